"""oiforge: Open Images into catalogs, datasets, classifiers, services and picture books.

The public API is lazy: importing ``oiforge`` is cheap, each stage is imported on first use.
"""

from __future__ import annotations

import os
import sys

if sys.platform == "linux":
    # Arrow's default allocator (mimalloc) gives freed memory back to the kernel and faults
    # it in again as transparent huge pages, zeroing 2 MiB a time: in a 6M-row ``select`` on
    # Linux that was half the CPU time (kernel ``clear_page``) and ~40% of the wall time
    # (bench/RESULTS.md). jemalloc, also in the wheels, does not. Read when Arrow first
    # allocates, so it holds wherever ``oiforge`` is imported first; a value set wins.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

__version__ = "0.1.0"

__all__ = ["__version__"]
