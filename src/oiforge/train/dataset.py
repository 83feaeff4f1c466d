"""Find the samples of a dataset: class folders or WebDataset shards, with optional metadata.

Folders: ``DATASET/{train,val,test}/<class>/*.jpg`` (``classes.json`` = [{index, name, folder,
mid}] is used when present, never required). Shards: ``*.tar`` files under ``DATASET/<split>/``
or named ``<split>-*.tar``, with ``<key>.jpg`` + ``<key>.cls`` (+ ``<key>.json``) members.
A sample is a path, or a (tar path, byte offset, size) slice: both read with one ``read``.
"""

from __future__ import annotations

import json
import logging
import random
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from oiforge.contracts.dataset import ClassInfo, read_classes
from oiforge.errors import InvalidInputError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test"}


@dataclass(frozen=True)
class Sample:
    """One image: ``path`` alone, or a slice ``[offset, offset+size)`` of the tar at ``path``."""

    path: str
    label: int
    key: str
    offset: int = -1
    size: int = -1

    def read_bytes(self) -> bytes:
        with Path(self.path).open("rb") as fh:
            if self.offset < 0:
                return fh.read()
            fh.seek(self.offset)
            return fh.read(self.size)


@dataclass
class DatasetIndex:
    """Classes and samples per split (``train``, ``val``, ``test``)."""

    root: Path
    classes: list[ClassInfo]
    splits: dict[str, list[Sample]] = field(default_factory=dict)
    kind: str = "folders"
    notes: list[str] = field(default_factory=list)

    @property
    def manifest(self) -> Path | None:
        path = self.root / "manifest.parquet"
        return path if path.is_file() else None

    def class_counts(self, split: str) -> list[int]:
        counts = Counter(s.label for s in self.splits.get(split, []))
        return [counts.get(c.index, 0) for c in self.classes]


def open_dataset(root: str | Path, val_fraction: float = 0.1, seed: int = 0) -> DatasetIndex:
    """Index a dataset directory; a missing ``val`` split is carved from ``train``."""
    base = Path(root)
    if not base.is_dir():
        raise InvalidInputError(f"dataset {base} is not a directory")
    shards = sorted(base.rglob("*.tar"))
    index = _index_shards(base, shards) if shards else _index_folders(base)
    _check_index(index)
    if not index.splits.get("val"):
        index.splits["train"], index.splits["val"] = split_off(
            index.splits["train"], val_fraction, seed
        )
        index.notes.append(f"no val split: held out {len(index.splits['val'])} train images")
    return index


def _read_classes_json(base: Path) -> list[ClassInfo] | None:
    found = read_classes(base)
    return None if found is None else list(found.classes)


def _index_folders(base: Path) -> DatasetIndex:
    train = base / "train"
    if not train.is_dir():
        raise InvalidInputError(
            f"dataset {base} has no train/ folder (expected train/<class>/*.jpg or *.tar shards)"
        )
    classes = _read_classes_json(base) or [
        ClassInfo(i, d.name, d.name) for i, d in enumerate(sorted(_subdirs(train)))
    ]
    index = DatasetIndex(base, classes)
    by_folder = {c.folder: c.index for c in classes}
    for folder_name, split in SPLIT_NAMES.items():
        split_dir = base / folder_name
        if split_dir.is_dir() and split not in index.splits:
            index.splits[split] = _folder_samples(split_dir, by_folder, index.notes)
    return index


def _subdirs(path: Path) -> list[Path]:
    return [d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")]


def _folder_samples(split_dir: Path, by_folder: dict[str, int], notes: list[str]) -> list[Sample]:
    samples: list[Sample] = []
    for sub in sorted(_subdirs(split_dir)):
        label = by_folder.get(sub.name)
        if label is None:
            notes.append(f"{sub} is not a known class folder: skipped")
            continue
        for file in sorted(sub.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file():
                key = f"{split_dir.name}/{sub.name}/{file.name}"
                samples.append(Sample(str(file), label, key))
    return samples


def _shard_split(base: Path, shard: Path) -> str | None:
    rel = shard.relative_to(base)
    if len(rel.parts) > 1 and rel.parts[0] in SPLIT_NAMES:
        return SPLIT_NAMES[rel.parts[0]]
    prefix = shard.name.split("-", 1)[0].split("_", 1)[0].split(".", 1)[0]
    return SPLIT_NAMES.get(prefix)


def _index_shards(base: Path, shards: list[Path]) -> DatasetIndex:
    classes = _read_classes_json(base)
    names: dict[int, str] = {}
    index = DatasetIndex(base, [], kind="webdataset")
    for shard in shards:
        split = _shard_split(base, shard)
        if split is None:
            index.notes.append(f"{shard.name}: no split in its path or name: skipped")
            continue
        index.splits.setdefault(split, []).extend(_tar_samples(shard, names, index.notes))
    if classes is None:
        labels = {s.label for ss in index.splits.values() for s in ss}
        count = max(labels) + 1 if labels else 0
        classes = [ClassInfo(i, names.get(i, f"class_{i}"), str(i)) for i in range(count)]
    index.classes = classes
    return index


def _tar_samples(shard: Path, names: dict[int, str], notes: list[str]) -> list[Sample]:
    images: dict[str, tarfile.TarInfo] = {}
    labels: dict[str, int] = {}
    try:
        with tarfile.open(shard, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, ext = member.name.partition(".")
                if "." + ext.lower() in IMAGE_SUFFIXES:
                    images[key] = member
                elif ext == "cls":
                    labels[key] = _read_cls(tar, member)
                elif ext == "json":
                    _note_name(tar, member, labels.get(key), names)
    except (tarfile.TarError, OSError, ValueError) as exc:
        notes.append(f"{shard.name}: unreadable shard ({exc}): skipped")
        return []
    missing = [k for k in images if k not in labels]
    if missing:
        notes.append(f"{shard.name}: {len(missing)} images without a .cls label: skipped")
    return [
        Sample(str(shard), labels[k], f"{shard.name}/{k}", m.offset_data, m.size)
        for k, m in images.items()
        if k in labels
    ]


def _read_cls(tar: tarfile.TarFile, member: tarfile.TarInfo) -> int:
    fh = tar.extractfile(member)
    return int((fh.read() if fh else b"").decode("ascii").strip())


def _note_name(
    tar: tarfile.TarFile, member: tarfile.TarInfo, label: int | None, names: dict[int, str]
) -> None:
    fh = tar.extractfile(member)
    try:
        meta = json.loads(fh.read() if fh else b"{}")
    except ValueError:
        return
    if not isinstance(meta, dict):
        return
    idx = label if label is not None else meta.get("cls", meta.get("label_index"))
    name = meta.get("class_name") or meta.get("label_name") or meta.get("name")
    if isinstance(idx, int) and isinstance(name, str):
        names.setdefault(idx, name)


def _check_index(index: DatasetIndex) -> None:
    train = index.splits.get("train", [])
    if not train:
        raise InvalidInputError(f"dataset {index.root} has no training images")
    if len(index.classes) < 2:
        raise InvalidInputError(
            f"dataset {index.root} has {len(index.classes)} class(es); a classifier needs >= 2"
        )
    empty = [
        c.folder for c, n in zip(index.classes, index.class_counts("train"), strict=True) if not n
    ]
    if empty:
        raise InvalidInputError(
            f"class folder(s) with no training images in {index.root}: {', '.join(empty)} "
            "(add images or remove the folder)"
        )
    bad = [s for ss in index.splits.values() for s in ss if not 0 <= s.label < len(index.classes)]
    if bad:
        raise InvalidInputError(
            f"{len(bad)} samples have a label outside 0..{len(index.classes) - 1}"
        )


def source_of(sample: Sample) -> str:
    """The source image of a sample: box crops ``<image_id>_<box>.jpg`` share their image."""
    return Path(sample.key).stem.split("_", 1)[0]


def split_off(
    samples: list[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """A stratified, seeded split by source image (crops of one photo stay together); each
    class with >= 2 source images gives at least one to the held-out part."""
    rng = random.Random(seed)
    keep: list[Sample] = []
    held: list[Sample] = []
    by_label: dict[int, dict[str, list[Sample]]] = {}
    for s in samples:
        by_label.setdefault(s.label, {}).setdefault(source_of(s), []).append(s)
    for label in sorted(by_label):
        sources = sorted(by_label[label])
        rng.shuffle(sources)
        n = min(len(sources) - 1, max(1, round(len(sources) * fraction)))
        for i, source in enumerate(sources):
            (held if i < n else keep).extend(by_label[label][source])
    return keep, held
