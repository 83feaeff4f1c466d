"""Find the samples of a dataset: class folders, WebDataset shards or Parquet image files.

Folders: ``DATASET/{train,val,test}/<class>/*.jpg`` (``classes.json`` = [{index, name, folder,
mid}] is used when present, never required). Shards: ``*.tar`` files under ``DATASET/<split>/``
or named ``<split>-*.tar``, with ``<key>.jpg`` + ``<key>.cls`` (+ ``<key>.json``) members.
Parquet: ``DATASET/parquet/<split>[-*].parquet`` (``oiforge build --format parquet``; see
:mod:`oiforge.contracts.parquet_images`), read only where there are no shards and no
``train/`` folder. A sample is a path, a (tar path, byte offset, size) slice, or a (Parquet
path, row) pair; :meth:`Sample.read_bytes` gives its bytes either way. Parquet samples are
keyed and ordered as the same dataset's class folders would be (``<split>/<folder>/<file>``).

Multi-label datasets (``classes.json`` says ``"task": "multilabel"``, or shards whose
members have no ``.cls`` but a ``.json`` with a ``labels`` list, or Parquet files with a
``labels`` column) are read from their shards or Parquet files: each ``<key>.json`` (each row)
lists the classes (indexes, or MIDs of ``classes.json`` in a shard) a person verified present
(``labels``) and absent (``negatives``); every other class is *unknown* for that photo, and
stays unknown (a target of :data:`UNKNOWN`) unless ``unknown_as_negative`` is asked for.
"""

from __future__ import annotations

import json
import logging
import random
import tarfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from oiforge.contracts.dataset import ClassInfo, Task, read_classes
from oiforge.contracts.parquet_images import (
    PARQUET_DIR,
    ParquetSplit,
    list_parquet_files,
    read_parquet_image,
    read_parquet_split,
)
from oiforge.errors import InvalidInputError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
#: A multi-label target: a verified positive, a verified negative, nobody checked.
POSITIVE, NEGATIVE, UNKNOWN = 1.0, 0.0, -1.0


@dataclass(frozen=True)
class Sample:
    """One image: ``path`` alone, a slice ``[offset, offset+size)`` of the tar at ``path``, or
    row ``row`` of the Parquet file at ``path``.

    Single-label: ``label`` is its class. Multi-label (``num_classes`` > 0; ``label`` is -1):
    ``positives`` and ``negatives`` are the class indexes verified present and absent."""

    path: str
    label: int
    key: str
    offset: int = -1
    size: int = -1
    positives: tuple[int, ...] = ()
    negatives: tuple[int, ...] = ()
    num_classes: int = 0
    row: int = -1
    group: int = -1  # a Parquet row's row group

    @property
    def block(self) -> tuple[str, int] | None:
        """The unit its bytes are read in: a Parquet file's row group (None for a file or a
        tar member, read alone)."""
        return (self.path, self.group) if self.row >= 0 else None

    def read_bytes(self) -> bytes:
        if self.row >= 0:
            return read_parquet_image(self.path, self.row)
        with Path(self.path).open("rb") as fh:
            if self.offset < 0:
                return fh.read()
            fh.seek(self.offset)
            return fh.read(self.size)

    @property
    def whole_file(self) -> bool:
        """The image is the whole file at ``path`` (not a tar member or a Parquet row)."""
        return self.offset < 0 and self.row < 0

    @property
    def multilabel(self) -> bool:
        return self.num_classes > 0

    @property
    def target(self) -> int | tuple[float, ...]:
        """What the model learns: the class, or one :data:`POSITIVE`/:data:`NEGATIVE`/
        :data:`UNKNOWN` per class (a class verified both ways counts as present)."""
        if not self.multilabel:
            return self.label
        row = [UNKNOWN] * self.num_classes
        for i in self.negatives:
            row[i] = NEGATIVE
        for i in self.positives:
            row[i] = POSITIVE
        return tuple(row)

    @property
    def label_key(self) -> str:
        """The labels as text (feature caches key on it)."""
        if not self.multilabel:
            return str(self.label)
        return "+" + ",".join(map(str, self.positives)) + "-" + ",".join(map(str, self.negatives))


@dataclass
class DatasetIndex:
    """Classes and samples per split (``train``, ``val``, ``test``)."""

    root: Path
    classes: list[ClassInfo]
    splits: dict[str, list[Sample]] = field(default_factory=dict)
    kind: str = "folders"
    notes: list[str] = field(default_factory=list)
    task: Task = "singlelabel"
    #: ``classes.json``'s account of how the labels were made (``expand_up``, ...)
    details: dict[str, object] = field(default_factory=dict)

    @property
    def manifest(self) -> Path | None:
        path = self.root / "manifest.parquet"
        return path if path.is_file() else None

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"

    def class_counts(self, split: str) -> list[int]:
        """Images per class (multi-label: images verified to show it)."""
        samples = self.splits.get(split, [])
        counts = Counter(c for s in samples for c in (s.positives if s.multilabel else (s.label,)))
        return [counts.get(c.index, 0) for c in self.classes]


def open_dataset(
    root: str | Path, val_fraction: float = 0.1, seed: int = 0, unknown_as_negative: bool = False
) -> DatasetIndex:
    """Index a dataset directory; a missing ``val`` split is carved from ``train``.
    ``unknown_as_negative`` (multi-label): every class not verified present counts as absent."""
    base = Path(root)
    if not base.is_dir():
        raise InvalidInputError(f"dataset {base} is not a directory")
    index = _index_any(base)
    _check_index(index)
    if unknown_as_negative:
        _unknown_as_negative(index)
    if not index.splits.get("val"):
        index.splits["train"], index.splits["val"] = split_off(
            index.splits["train"], val_fraction, seed
        )
        index.notes.append(f"no val split: held out {len(index.splits['val'])} train images")
    return index


def _index_any(base: Path) -> DatasetIndex:
    """Shards if there are any, else class folders, else Parquet image files."""
    shards = sorted(base.rglob("*.tar"))
    if shards:
        return _index_shards(base, shards)
    parquet = list_parquet_files(base)
    if parquet and not (base / "train").is_dir():
        return _index_parquet(base, parquet)
    return _index_folders(base)


def _unknown_as_negative(index: DatasetIndex) -> None:
    if not index.multilabel:
        raise InvalidInputError(
            f"--unknown-as-negative is for multi-label datasets; {index.root} is single-label"
        )
    everything = range(len(index.classes))
    for split, samples in index.splits.items():
        index.splits[split] = [
            replace(s, negatives=_others(s.positives, everything)) for s in samples
        ]
    index.notes.append("--unknown-as-negative: every class nobody verified counts as absent")


def _others(positives: tuple[int, ...], everything: range) -> tuple[int, ...]:
    present = set(positives)
    return tuple(c for c in everything if c not in present)


def _index_folders(base: Path) -> DatasetIndex:
    train = base / "train"
    found = read_classes(base)
    if found is not None and found.task == "multilabel":
        raise InvalidInputError(
            f"dataset {base} is multi-label and has no WebDataset shards or Parquet files: "
            "training reads multi-label datasets from those (oiforge build --task multilabel "
            "--format parquet or webdataset)"
        )
    if not train.is_dir():
        raise InvalidInputError(
            f"dataset {base} has no train/ folder (expected train/<class>/*.jpg, *.tar shards "
            "or parquet/<split>.parquet)"
        )
    classes = (
        list(found.classes)
        if found is not None
        else [ClassInfo(i, d.name, d.name) for i, d in enumerate(sorted(_subdirs(train)))]
    )
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


@dataclass
class _Shard:
    """What one shard holds: images, ``.cls`` labels, and the ``.json`` label lists."""

    path: Path
    split: str
    images: dict[str, tarfile.TarInfo] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    lists: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)


def _index_shards(base: Path, shards: list[Path]) -> DatasetIndex:
    found = read_classes(base)
    names: dict[int, str] = {}
    index = DatasetIndex(base, [], kind="webdataset")
    read: list[_Shard] = []
    for shard in shards:
        split = _shard_split(base, shard)
        if split is None:
            index.notes.append(f"{shard.name}: no split in its path or name: skipped")
            continue
        mids = {c.mid: c.index for c in found.classes} if found is not None else {}
        content = _read_shard(shard, split, names, index.notes, mids)
        if content is not None:
            read.append(content)
    if found is not None:
        index.task, index.details = found.task, dict(found.details)
    elif read and not any(r.labels for r in read) and any(r.lists for r in read):
        index.task = "multilabel"  # no classes.json: .json label lists and no .cls
    for r in read:
        if not index.multilabel:
            index.splits.setdefault(r.split, []).extend(_single_samples(r, index.notes))
    classes = list(found.classes) if found is not None else None
    if index.multilabel:
        count = len(classes) if classes is not None else _list_width(read)
        for r in read:
            index.splits.setdefault(r.split, []).extend(_multi_samples(r, count, index.notes))
    if classes is None:
        labels = {s.label for ss in index.splits.values() for s in ss if not s.multilabel}
        count = max(labels) + 1 if labels else _list_width(read) if index.multilabel else 0
        classes = [ClassInfo(i, names.get(i, f"class_{i}"), str(i)) for i in range(count)]
    index.classes = classes
    return index


def _list_width(read: list[_Shard]) -> int:
    """The class count implied by the label lists (largest index + 1)."""
    return 1 + max(
        (i for r in read for pos, neg in r.lists.values() for i in (*pos, *neg)), default=-1
    )


def _read_shard(
    shard: Path, split: str, names: dict[int, str], notes: list[str], mids: dict[str, int]
) -> _Shard | None:
    """What ``shard`` holds; ``mids`` (MID → class index) reads label lists of MIDs."""
    out = _Shard(shard, split)
    try:
        with tarfile.open(shard, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, ext = member.name.partition(".")
                if "." + ext.lower() in IMAGE_SUFFIXES:
                    out.images[key] = member
                elif ext == "cls":
                    out.labels[key] = _read_cls(tar, member)
                elif ext == "json":
                    meta = _read_json(tar, member)
                    _note_name(meta, out.labels.get(key), names)
                    lists = _label_lists(meta, mids)
                    if lists is not None:
                        out.lists[key] = lists
    except (tarfile.TarError, OSError, ValueError) as exc:
        notes.append(f"{shard.name}: unreadable shard ({exc}): skipped")
        return None
    return out


def _single_samples(shard: _Shard, notes: list[str]) -> list[Sample]:
    images, labels = shard.images, shard.labels
    missing = [k for k in images if k not in labels]
    if missing:
        notes.append(f"{shard.path.name}: {len(missing)} images without a .cls label: skipped")
    return [
        Sample(str(shard.path), labels[k], f"{shard.path.name}/{k}", m.offset_data, m.size)
        for k, m in images.items()
        if k in labels
    ]


def _multi_samples(shard: _Shard, num_classes: int, notes: list[str]) -> list[Sample]:
    images, lists = shard.images, shard.lists
    missing = [k for k in images if k not in lists]
    if missing:
        notes.append(
            f"{shard.path.name}: {len(missing)} images without labels/negatives lists in their "
            ".json: skipped"
        )
    name = shard.path.name
    return [
        Sample(str(shard.path), -1, f"{name}/{k}", m.offset_data, m.size, *lists[k], num_classes)
        for k, m in images.items()
        if k in lists
    ]


def _index_parquet(base: Path, files: list[Path]) -> DatasetIndex:
    """Parquet image files: classes from ``classes.json``, else the files' class names."""
    found = read_classes(base)
    index = DatasetIndex(base, [], kind="parquet")
    read: list[tuple[str, ParquetSplit]] = []
    for file in files:
        split = _shard_split(base / PARQUET_DIR, file)
        if split is None:
            index.notes.append(f"{file.name}: no split in its path or name: skipped")
        else:
            read.append((split, read_parquet_split(file)))
    if found is not None:
        index.task, index.details = found.task, dict(found.details)
    elif any(p.multilabel for _, p in read):
        index.task = "multilabel"
    wrong = [p.path.name for _, p in read if p.multilabel != index.multilabel]
    if wrong:
        raise InvalidInputError(
            f"dataset {base} is {index.task} but {', '.join(wrong)} hold the other task's labels"
        )
    index.classes = list(found.classes) if found is not None else _parquet_classes(read)
    for split, part in read:
        index.splits.setdefault(split, []).extend(_parquet_samples(split, part, index.classes))
    if not index.multilabel:  # the order of class folders: by folder, then file name
        for samples in index.splits.values():
            samples.sort(key=lambda s: s.key.split("/")[1:])
    return index


def _parquet_classes(read: list[tuple[str, ParquetSplit]]) -> list[ClassInfo]:
    """The schema's class names, else ``class_<i>`` up to the largest label (no classes.json)."""
    names = next((p.class_names for _, p in read if p.class_names), ())
    lists = [r for _, p in read for r in (*(p.positives or []), *(p.negatives or []))]
    used = [i for _, p in read for i in p.labels or []] + [i for r in lists for i in r]
    count = max(len(names), max(used, default=-1) + 1)
    return [
        ClassInfo(i, names[i], names[i]) if i < len(names) else ClassInfo(i, f"class_{i}", str(i))
        for i in range(count)
    ]


def _parquet_samples(split: str, part: ParquetSplit, classes: list[ClassInfo]) -> list[Sample]:
    path = str(part.path)
    if part.positives is not None and part.negatives is not None:
        n, name = len(classes), part.path.name
        lists = zip(part.keys, part.positives, part.negatives, strict=True)
        return [
            Sample(path, -1, f"{name}/{k}", positives=pos, negatives=neg, num_classes=n, row=row,
                   group=part.groups[row])
            for row, (k, pos, neg) in enumerate(lists)
        ]  # fmt: skip
    folder = {c.index: c.folder or c.name for c in classes}
    return [
        Sample(
            path,
            label,
            f"{split}/{folder.get(label, str(label))}/{name}",
            row=row,
            group=part.groups[row],
        )
        for row, (name, label) in enumerate(zip(part.names, part.labels or [], strict=True))
    ]


def _read_cls(tar: tarfile.TarFile, member: tarfile.TarInfo) -> int:
    fh = tar.extractfile(member)
    return int((fh.read() if fh else b"").decode("ascii").strip())


def _read_json(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict[str, object]:
    fh = tar.extractfile(member)
    try:
        meta = json.loads(fh.read() if fh else b"{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _label_lists(
    meta: dict[str, object], mids: dict[str, int]
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """A multi-label sample's (positives, negatives) class indexes, from lists of indexes or
    of MIDs (``mids``; a MID of no class of the dataset is not one of its labels); None when
    ``labels`` is not such a list."""
    pos, neg = meta.get("labels"), meta.get("negatives", [])
    if not isinstance(pos, list) or not isinstance(neg, list):
        return None
    if all(isinstance(i, str) for i in (*pos, *neg)) and mids and (pos or neg):
        pos, neg = [mids[m] for m in pos if m in mids], [mids[m] for m in neg if m in mids]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in (*pos, *neg)):
        return None
    return tuple(sorted(set(pos))), tuple(sorted(set(neg)))


def _note_name(meta: dict[str, object], label: int | None, names: dict[int, str]) -> None:
    idx = label if label is not None else meta.get("cls", meta.get("label_index"))
    name = meta.get("class_name") or meta.get("label_name") or meta.get("name")
    if isinstance(idx, int) and isinstance(name, str):
        names.setdefault(idx, name)


def _check_index(index: DatasetIndex) -> None:
    train = index.splits.get("train", [])
    if not train:
        raise InvalidInputError(f"dataset {index.root} has no training images")
    if index.multilabel:
        _check_multilabel(index)
        return
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


def _check_multilabel(index: DatasetIndex) -> None:
    """A multi-label dataset needs a class, and labels inside it; a class that no training
    photo was verified to show can still learn from its negatives (a notice says so)."""
    n = len(index.classes)
    if n < 1:
        raise InvalidInputError(f"dataset {index.root} has no classes")
    bad = [
        s for ss in index.splits.values() for s in ss
        if any(not 0 <= i < n for i in (*s.positives, *s.negatives))
    ]  # fmt: skip
    if bad:
        raise InvalidInputError(f"{len(bad)} samples have a label outside 0..{n - 1}")
    counts = index.class_counts("train")
    if not any(counts):
        raise InvalidInputError(
            f"dataset {index.root}: no training photo has a verified positive label"
        )
    empty = [c.name for c, k in zip(index.classes, counts, strict=True) if not k]
    if empty:
        index.notes.append(
            f"no training photo is verified to show {', '.join(empty)}: "
            "learnt from verified negatives only"
        )


def source_of(sample: Sample) -> str:
    """The source image of a sample: box crops ``<image_id>_<box>.jpg`` share their image."""
    return Path(sample.key).stem.split("_", 1)[0]


def strata(samples: Sequence[Sample]) -> list[int]:
    """What a split stratifies on: the class (single-label), or the rarest class a photo is
    verified to show (multi-label; -1 for none), so rare classes reach every part."""
    if not samples or not samples[0].multilabel:
        return [s.label for s in samples]
    counts = Counter(c for s in samples for c in s.positives)
    return [min(s.positives, key=lambda c: (counts[c], c)) if s.positives else -1 for s in samples]


def split_off(
    samples: list[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """A stratified, seeded split by source image (crops of one photo stay together); each
    class with >= 2 source images gives at least one to the held-out part (multi-label:
    stratified by :func:`strata`)."""
    rng = random.Random(seed)
    keep: list[Sample] = []
    held: list[Sample] = []
    by_label: dict[int, dict[str, list[Sample]]] = {}
    for s, stratum in zip(samples, strata(samples), strict=True):
        by_label.setdefault(stratum, {}).setdefault(source_of(s), []).append(s)
    for label in sorted(by_label):
        sources = sorted(by_label[label])
        rng.shuffle(sources)
        n = min(len(sources) - 1, max(1, round(len(sources) * fraction)))
        for i, source in enumerate(sources):
            (held if i < n else keep).extend(by_label[label][source])
    return keep, held
