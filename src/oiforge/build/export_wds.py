"""WebDataset shards: ``wds/<split>-NNNNNN.tar`` holding ``<key>.jpg``, ``.cls``, ``.json``.

Tar members carry no time, owner or permissions noise, so a rebuild is byte-identical.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

from oiforge.atomic import atomic_open
from oiforge.build.assemble import ExportSample
from oiforge.contracts import DATASET_SPLITS


def sample_json(s: ExportSample) -> dict[str, object]:
    """The small per-sample metadata stored beside the image."""
    return {
        "key": s.key,
        "image_id": s.record.image_id,
        "label": s.cls.index,
        "class_name": s.cls.name,
        "label_mid": s.cls.mid,
        "box_index": s.box_index,
        "license": s.meta.attribution["license"],
        "author": s.meta.attribution["author"],
        "landing_url": s.meta.attribution["landing_url"],
    }


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _write_shard(path: Path, chunk: list[ExportSample], source: Callable[[str], Path]) -> None:
    with (
        atomic_open(path, "wb") as fh,
        tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for s in chunk:
            _add(tar, f"{s.key}.jpg", source(s.key).read_bytes())
            _add(tar, f"{s.key}.cls", str(s.cls.index).encode())
            meta = json.dumps(sample_json(s), sort_keys=True, ensure_ascii=False)
            _add(tar, f"{s.key}.json", meta.encode())


def write_shards(
    root: Path, samples: list[ExportSample], source: Callable[[str], Path], shard_size: int
) -> dict[str, str]:
    """Write the shards of every split; return key → shard path (relative to ``root``)."""
    where: dict[str, str] = {}
    for split in DATASET_SPLITS:
        items = [s for s in samples if s.split == split]
        for n, start in enumerate(range(0, len(items), shard_size)):
            rel = f"wds/{split}-{n:06d}.tar"
            chunk = items[start : start + shard_size]
            _write_shard(root / rel, chunk, source)
            where.update({s.key: rel for s in chunk})
    return where
