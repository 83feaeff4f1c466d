"""Scale out: the download and build stages over shards of the selection, locally or on Ray.

    from oiforge.distributed import run_download_sharded
    summary = run_download_sharded("selection.parquet", "store", DownloadConfig(), endpoints,
                                   backend="ray", address="auto", num_shards=64)

The selection is cut by ImageID hash into independent shards; each shard runs the same stage
function as the local path (as a Ray task with ``backend="ray"``), writes its own journal and
outputs atomically, and the driver merges them. Reruns skip complete shards. Ray is imported
only when ``backend="ray"``; ``backend="local"`` (the default) never needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oiforge.distributed.engine import (
    BACKENDS,
    Backend,
    BackendError,
    ShardEvent,
    ShardOutcome,
    ShardProgress,
)
from oiforge.distributed.options import BackendOptions, add_backend_options
from oiforge.lazy import lazy_attributes

if TYPE_CHECKING:
    from oiforge.distributed.build_shards import run_build_sharded
    from oiforge.distributed.download_shards import run_download_sharded
    from oiforge.distributed.shards import DEFAULT_SHARD_IMAGES, shard_of

# the stages (and pyarrow) load on first use, so `oiforge --help` stays fast
__getattr__ = lazy_attributes(
    __name__,
    {
        "oiforge.distributed.build_shards": ("run_build_sharded",),
        "oiforge.distributed.download_shards": ("run_download_sharded",),
        "oiforge.distributed.shards": ("DEFAULT_SHARD_IMAGES", "shard_of"),
    },
)


__all__ = [
    "BACKENDS",
    "DEFAULT_SHARD_IMAGES",
    "Backend",
    "BackendError",
    "BackendOptions",
    "ShardEvent",
    "ShardOutcome",
    "ShardProgress",
    "add_backend_options",
    "run_build_sharded",
    "run_download_sharded",
    "shard_of",
]
