"""The export formats, and the manifest rows that say where each sample went.

- class folders: ``train|val|test/<class>/<key>.jpg`` (torchvision ImageFolder and friends);
- WebDataset shards: ``wds/<split>-NNNNNN.tar`` holding ``<key>.jpg``, ``.cls``, ``.json``;
  tar members carry no time, owner or permissions noise, so a rebuild is byte-identical;
- Parquet with image bytes: ``parquet/<split>.parquet``, readable by HF ``datasets``; its
  schema and writer are :mod:`oiforge.contracts.parquet_images` (beside its reader);
- ``manifest.parquet`` rows (written by :mod:`oiforge.contracts.dataset`) and
  ``excluded.parquet`` (every sample or image left out, with its reason).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from oiforge.atomic import atomic_open
from oiforge.build.assemble import ExportSample
from oiforge.build.plan import Exclusion
from oiforge.contracts import DATASET_SPLITS
from oiforge.contracts.dataset import ClassInfo, Task
from oiforge.contracts.dataset import write_manifest as write_dataset_manifest
from oiforge.contracts.parquet_images import (
    MULTI_LABEL_LISTS,
    PARQUET_DIR,
    ParquetImage,
    write_parquet_split,
)


def _place(src: str, dst: str) -> None:
    """Hard-link the cached sample into place (copy across file systems)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_folders(
    root: Path, samples: list[ExportSample], source: Callable[[str], Path]
) -> dict[str, str]:
    """Write every sample into its class folder; return key → relative path."""
    paths = {}
    made: set[str] = set()
    base = str(root)
    for s in samples:
        folder = f"{s.split}/{s.cls.folder}"
        if folder not in made:
            (root / folder).mkdir(parents=True, exist_ok=True)
            made.add(folder)
        _place(str(source(s.key)), f"{base}/{s.folder_path}")
        paths[s.key] = s.folder_path
    return paths


def sample_json(s: ExportSample) -> dict[str, object]:
    """The small per-sample metadata stored beside the image (``multilabel``: the class
    indexes, names and MIDs of its verified positives, verified negatives and machine labels;
    every other class is unknown)."""
    if s.tags is not None:
        return {
            "key": s.key,
            "image_id": s.record.image_id,
            **{
                f"{kind}{suffix}": [getattr(c, attr) for c in getattr(s.tags, kind)]
                for kind in ("labels", "negatives", "machine")
                for suffix, attr in (("", "index"), ("_names", "name"), ("_mids", "mid"))
            },
            **{k: s.meta.attribution[k] for k in ("license", "author", "landing_url")},
        }
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
            if s.tags is None:
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


def _parquet_image(s: ExportSample, source: Callable[[str], Path]) -> ParquetImage:
    row = ParquetImage(s.key, s.record.image_id, s.sha256, source(s.key))
    if s.tags is not None:
        lists = [tuple(c.index for c in getattr(s.tags, k)) for k in MULTI_LABEL_LISTS]
        return replace(row, labels=lists[0], negatives=lists[1], machine=lists[2])
    return replace(row, label=s.cls.index, label_mid=s.cls.mid, box_index=s.box_index)


def write_parquet(
    root: Path,
    samples: list[ExportSample],
    source: Callable[[str], Path],
    classes: list[ClassInfo],
    task: Task = "singlelabel",
) -> dict[str, str]:
    """One Parquet file per split, written through :mod:`oiforge.contracts.parquet_images`;
    return key → file path (relative to ``root``)."""
    where: dict[str, str] = {}
    for split in DATASET_SPLITS:
        items = [s for s in samples if s.split == split]
        if not items:
            continue
        rel = f"{PARQUET_DIR}/{split}.parquet"
        rows = [_parquet_image(s, source) for s in items]
        write_parquet_split(root / rel, rows, [c.folder for c in classes], task)
        where.update({s.key: rel for s in items})
    return where


EXCLUDED_SCHEMA: Final = pa.schema(
    [
        ("image_id", pa.string()),
        ("key", pa.string()),
        ("label_mid", pa.string()),
        ("box_index", pa.int32()),
        ("reason", pa.string()),
    ]
)


def _write_table(path: Path, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_open(path, "wb") as fh:
        pq.write_table(table, fh)


def manifest_row(s: ExportSample, where: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """One manifest row; ``where`` maps format → key → relative path."""
    box = s.box
    wds, parquet = where.get("webdataset", {}), where.get("parquet", {})
    primary = where.get("folders", {}).get(s.key) or (
        f"{wds[s.key]}#{s.key}.jpg" if s.key in wds else f"{parquet.get(s.key, '')}#{s.key}"
    )
    if s.tags is not None:
        classes: dict[str, Any] = {
            k: [c.mid for c in getattr(s.tags, k)] for k in ("labels", "negatives", "machine")
        }
    else:
        classes = {
            "class_index": s.cls.index,
            "class_name": s.cls.name,
            "class_folder": s.cls.folder,
            "label_mid": s.cls.mid,
        }
    return {
        "sample_path": primary,
        "key": s.key,
        "split": s.split,
        **classes,
        "image_id": s.record.image_id,
        "box_index": s.box_index,
        **{k: (getattr(box, k) if box else None) for k in ("x_min", "x_max", "y_min", "y_max")},
        "crop": s.crop,
        "width": s.width,
        "height": s.height,
        "sha256": s.sha256,
        "source_sha256": s.record.source_sha256,
        "flags": ",".join(s.record.flags),
        "wds_shard": wds.get(s.key, ""),
        "parquet_file": parquet.get(s.key, ""),
        **s.meta.attribution,
    }


def write_manifest(
    root: Path,
    samples: list[ExportSample],
    where: Mapping[str, Mapping[str, str]],
    task: Task = "singlelabel",
) -> list[dict[str, Any]]:
    """``manifest.parquet``: one row per sample, attribution included."""
    rows = [manifest_row(s, where) for s in samples]
    write_dataset_manifest(root, rows, task)
    return rows


def write_excluded(root: Path, excluded: list[Exclusion]) -> None:
    """``excluded.parquet``: every sample or image left out, with its reason."""
    rows = [
        {
            "image_id": e.image_id,
            "key": e.key,
            "label_mid": e.label_mid,
            "box_index": e.box_index,
            "reason": e.reason,
        }
        for e in excluded
    ]
    _write_table(root / "excluded.parquet", rows, EXCLUDED_SCHEMA)
