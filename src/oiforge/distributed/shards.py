"""Cut a selection into shards by ImageID hash, one Parquet file per shard, written atomically.

Every row of an image lands in the same shard (the shard is a function of the ImageID only),
so a shard is a complete, independent selection: the stage functions run on it unchanged.
The hash is the first 48 bits of the ID's MD5, so it is stable across processes, machines and
Python versions (``hash()`` is not). Rows keep their order inside a shard. Shard files are
streamed batch by batch, at most :data:`MAX_OPEN_WRITERS` open at once (more shards means more
passes over the input), so the driver's memory does not grow with the selection.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from oiforge.atomic import fsync_dir
from oiforge.contracts.selection import count_selected_images, image_ids_as_text, open_selection
from oiforge.errors import InvalidInputError, MalformedFileError

#: Distinct images per shard when the caller does not say (img2dataset uses 10,000 too).
DEFAULT_SHARD_IMAGES: Final = 10_000
MAX_SHARDS: Final = 100_000
MAX_OPEN_WRITERS: Final = 256
BATCH_ROWS: Final = 65_536
SHARD_FILE: Final = "selection.parquet"


def shard_of(image_id: object, num_shards: int) -> int:
    """The shard (``0 <= k < num_shards``) of an ImageID; any value maps somewhere."""
    text = "" if image_id is None else str(image_id)
    digest = hashlib.md5(text.encode("utf-8", "surrogatepass"), usedforsecurity=False)
    return int(digest.hexdigest()[:12], 16) % num_shards


def check_num_shards(num_shards: int) -> int:
    if isinstance(num_shards, bool) or not isinstance(num_shards, int):
        raise InvalidInputError(f"num_shards must be an integer, got {num_shards!r}")
    if not 1 <= num_shards <= MAX_SHARDS:
        raise InvalidInputError(f"num_shards must be in [1, {MAX_SHARDS}], got {num_shards}")
    return num_shards


@dataclass(frozen=True)
class Shard:
    """One shard's selection file, its index, and a fingerprint of its content."""

    index: int
    count: int  # how many shards the selection was cut into
    path: Path
    key: str  # sha256 of the shard file: a changed selection gives a changed key
    images: int  # distinct ImageIDs in the shard
    rows: int

    @property
    def name(self) -> str:
        return shard_name(self.index, self.count)


def shard_name(index: int, count: int) -> str:
    width = len(str(count - 1))
    return f"{index:0{width}d}-of-{count}"


def auto_num_shards(images: int, min_shards: int = 1) -> int:
    """Enough shards for :data:`DEFAULT_SHARD_IMAGES` images each, at least ``min_shards``."""
    wanted = math.ceil(images / DEFAULT_SHARD_IMAGES) if images else 1
    return max(1, min(MAX_SHARDS, max(wanted, min_shards)))


def _shard_ids(ids: pa.Array, num_shards: int) -> pa.Array:
    """Shard index per row; each distinct value is hashed once per batch."""
    as_text = image_ids_as_text(ids)
    unique = pc.unique(as_text)
    of_unique = pa.array([shard_of(v, num_shards) for v in unique.to_pylist()], pa.int32())
    return pc.take(of_unique, pc.index_in(as_text, value_set=unique))


def _batches(pf: pq.ParquetFile) -> Iterator[pa.RecordBatch]:
    try:
        yield from pf.iter_batches(batch_size=BATCH_ROWS)
    except (pa.ArrowInvalid, OSError) as exc:
        raise MalformedFileError(str(pf.metadata), f"unreadable row group ({exc})") from exc


def split_selection(selection: Path, work: Path, num_shards: int) -> list[Shard]:
    """Write ``work/<k>-of-<n>/selection.parquet`` for every non-empty shard; list them."""
    check_num_shards(num_shards)
    pf = open_selection(selection)
    written: list[int] = []
    for first in range(0, num_shards, MAX_OPEN_WRITERS):
        group = range(first, min(num_shards, first + MAX_OPEN_WRITERS))
        written += _write_group(pf, work, num_shards, group)
    return [_describe(work, k, num_shards) for k in sorted(written)]


def _write_group(pf: pq.ParquetFile, work: Path, num_shards: int, group: range) -> list[int]:
    writers: dict[int, tuple[pq.ParquetWriter, Path]] = {}
    try:
        for batch in _batches(pf):
            shards = _shard_ids(batch.column("image_id"), num_shards)
            for k in pc.unique(shards).to_pylist():
                if k in group:
                    writer = writers.get(k) or _open_writer(work, k, num_shards, pf.schema_arrow)
                    writers[k] = writer
                    writer[0].write_batch(batch.filter(pc.equal(shards, k)))
    except BaseException:
        for writer, tmp in writers.values():
            writer.close()
            tmp.unlink(missing_ok=True)
        raise
    for k, (writer, tmp) in writers.items():
        writer.close()
        tmp.replace(_shard_dir(work, k, num_shards) / SHARD_FILE)
        fsync_dir(tmp.parent)
    return list(writers)


def _open_writer(
    work: Path, index: int, num_shards: int, schema: pa.Schema
) -> tuple[pq.ParquetWriter, Path]:
    folder = _shard_dir(work, index, num_shards)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{SHARD_FILE}.tmp"
    return pq.ParquetWriter(tmp, schema), tmp


def _shard_dir(work: Path, index: int, num_shards: int) -> Path:
    return work / shard_name(index, num_shards)


def _describe(work: Path, index: int, num_shards: int) -> Shard:
    path = _shard_dir(work, index, num_shards) / SHARD_FILE
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    rows = pq.ParquetFile(path).metadata.num_rows
    return Shard(index, num_shards, path, digest.hexdigest(), count_selected_images(path), rows)


def remove_other_layouts(work: Path, num_shards: int) -> None:
    """Drop shard folders of an earlier run cut into a different number of shards."""
    if not work.is_dir():
        return
    suffix = f"-of-{num_shards}"
    for child in work.iterdir():
        if child.is_dir() and "-of-" in child.name and not child.name.endswith(suffix):
            shutil.rmtree(child, ignore_errors=True)
