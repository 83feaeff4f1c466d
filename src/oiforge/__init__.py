"""oiforge: Open Images into catalogs, datasets, classifiers, services and picture books.

The public API is lazy: importing ``oiforge`` is cheap, each stage is imported on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
