"""oiforge: Open Images into catalogs, datasets, classifiers, services and picture books.

The public API is lazy: importing ``oiforge`` is cheap, each stage is imported on first use::

    import oiforge
    result = oiforge.run("examples/sandwiches.yaml")   # every stage of a spec (oiforge run)
    for stage in result.stages:
        print(stage.stage, stage.action, stage.why)
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: importing typing would double this module's import time
if TYPE_CHECKING:
    from oiforge.pipeline import RunResult, run

if sys.platform == "linux":
    # Arrow's default allocator (mimalloc) gives freed memory back to the kernel and faults
    # it in again as transparent huge pages, zeroing 2 MiB a time: in a 6M-row ``select`` on
    # Linux that was half the CPU time (kernel ``clear_page``) and ~40% of the wall time
    # (bench/RESULTS.md). jemalloc, also in the wheels, does not. Read when Arrow first
    # allocates, so it holds wherever ``oiforge`` is imported first; a value set wins.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``run`` and ``RunResult`` load the pipeline on first use."""
    if name in ("RunResult", "run"):
        from oiforge import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'oiforge' has no attribute {name!r}")


__all__ = ["RunResult", "__version__", "run"]
