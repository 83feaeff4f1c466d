"""A built dataset's machine-readable files: ``manifest.parquet`` and ``classes.json``.

    dataset/manifest.parquet   one row per exported sample (:data:`MANIFEST_SCHEMA`), with
                               its class, box, crop, hashes, where each format holds it and
                               the photo's attribution
    dataset/classes.json       the classes (:class:`ClassInfo`): index (the label a model
                               predicts, in sorted folder order), display name, folder, MID

The build writes both (:func:`write_manifest`, :func:`write_classes`); training and
evaluation read them (:func:`read_manifest`, :func:`read_classes`).

Tasks (``oiforge build --task``):

- ``singlelabel``: one class per sample (``class_index`` and friends); ``classes.json`` is a
  JSON list.
- ``multilabel``: one sample per photo; the manifest replaces the single class columns by the
  list columns of :data:`MULTI_LABEL_COLUMNS` (label MIDs): ``labels`` (human-verified
  positives), ``negatives`` (human-verified negatives) and ``machine`` (machine labels at the
  selection's ``min_confidence`` that no human verified; empty without it). A class in none
  of them is *unknown* for that photo: nobody checked, so it is never a negative.
  ``classes.json`` is an object ``{"task": "multilabel", "classes": [...], "expand_up":
  bool, "negatives_source": "...", "min_confidence": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from oiforge.atomic import atomic_open, write_text_atomic
from oiforge.errors import MalformedFileError, StageError

#: Split names in an exported dataset (folder names).
DATASET_SPLITS: Final = ("train", "val", "test")
DATASET_SPLIT_OF: Final = {"train": "train", "validation": "val", "test": "test"}

MANIFEST_NAME: Final = "manifest.parquet"
CLASSES_NAME: Final = "classes.json"

Task = Literal["singlelabel", "multilabel"]
TASKS: Final[tuple[Task, ...]] = ("singlelabel", "multilabel")


@dataclass(frozen=True)
class ClassInfo:
    """One class of a dataset or model: ``index`` (the model output; sorted folder order),
    display name, folder name in the dataset (empty where none) and Open Images MID."""

    index: int
    name: str
    folder: str = ""
    mid: str = ""

    def to_dict(self) -> dict[str, object]:
        """The ``classes.json`` entry."""
        return {"index": self.index, "name": self.name, "folder": self.folder, "mid": self.mid}


@dataclass(frozen=True)
class DatasetClasses:
    """What ``classes.json`` holds: the classes, in index order, the dataset's task and (a
    ``multilabel`` dataset) how its labels were made (``expand_up``, ``negatives_source``,
    ``min_confidence``)."""

    classes: tuple[ClassInfo, ...]
    task: Task = "singlelabel"
    details: Mapping[str, object] = field(default_factory=dict)


#: The columns of a ``singlelabel`` manifest.
MANIFEST_SCHEMA: Final = pa.schema(
    [
        ("sample_path", pa.string()),
        ("key", pa.string()),
        ("split", pa.string()),
        ("class_index", pa.int32()),
        ("class_name", pa.string()),
        ("class_folder", pa.string()),
        ("label_mid", pa.string()),
        ("image_id", pa.string()),
        ("box_index", pa.int32()),
        ("x_min", pa.float32()),
        ("x_max", pa.float32()),
        ("y_min", pa.float32()),
        ("y_max", pa.float32()),
        ("crop", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("sha256", pa.string()),
        ("source_sha256", pa.string()),
        ("flags", pa.string()),
        ("wds_shard", pa.string()),
        ("parquet_file", pa.string()),
        ("license", pa.string()),
        ("author", pa.string()),
        ("author_profile_url", pa.string()),
        ("title", pa.string()),
        ("landing_url", pa.string()),
        ("original_url", pa.string()),
    ]
)
#: The single-label class columns a ``multilabel`` manifest does not have ...
SINGLE_LABEL_COLUMNS: Final = ("class_index", "class_name", "class_folder", "label_mid")
#: ... and the list columns (label MIDs) it has instead.
MULTI_LABEL_COLUMNS: Final = (
    ("labels", pa.list_(pa.string())),
    ("negatives", pa.list_(pa.string())),
    ("machine", pa.list_(pa.string())),
)


def manifest_schema(task: Task = "singlelabel") -> pa.Schema:
    """The manifest's columns for ``task``."""
    if task == "singlelabel":
        return MANIFEST_SCHEMA
    kept = [f for f in MANIFEST_SCHEMA if f.name not in SINGLE_LABEL_COLUMNS]
    at = [f.name for f in kept].index("image_id")
    return pa.schema([*kept[:at], *(pa.field(n, t) for n, t in MULTI_LABEL_COLUMNS), *kept[at:]])


def write_manifest(
    root: Path, rows: Sequence[Mapping[str, Any]], task: Task = "singlelabel"
) -> None:
    """``manifest.parquet``: one row per sample (dicts keyed by :func:`manifest_schema`)."""
    table = pa.Table.from_pylist(list(rows), schema=manifest_schema(task))
    with atomic_open(root / MANIFEST_NAME, "wb") as fh:
        pq.write_table(table, fh)


def read_manifest(root: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """The manifest of the dataset at ``root`` (or ``columns`` of it)."""
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise StageError(f"{root} has no {MANIFEST_NAME} (build it with `oiforge build`)")
    try:
        table = pq.read_table(path, columns=None if columns is None else list(columns))
    except (pa.ArrowException, OSError) as exc:
        raise MalformedFileError(str(path), f"not a readable manifest ({exc})") from exc
    has = set(table.column_names)
    if columns is None and not {"key", "split", "image_id"} <= has:
        raise MalformedFileError(str(path), "not an oiforge manifest (no key/split/image_id)")
    return table


def write_classes(
    root: Path,
    classes: Sequence[ClassInfo],
    task: Task = "singlelabel",
    details: Mapping[str, object] | None = None,
) -> None:
    """``classes.json``: a list of :meth:`ClassInfo.to_dict`, or for ``multilabel`` an object
    ``{"task", "classes", **details}`` (``expand_up``, ``negatives_source``, ...)."""
    entries = [c.to_dict() for c in classes]
    doc: object = entries
    if task != "singlelabel":
        doc = {"task": task, "classes": entries, **(details or {})}
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    write_text_atomic(root / CLASSES_NAME, text + "\n")


def read_classes(root: Path) -> DatasetClasses | None:
    """The classes of the dataset at ``root`` in index order (None without ``classes.json``).

    Entries need ``index`` and ``name``; ``folder`` defaults to the name, ``mid`` to empty.
    """
    path = root / CLASSES_NAME
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        task, rows = _task_and_rows(doc)
        details = (
            {k: v for k, v in doc.items() if k not in ("task", "classes")}
            if isinstance(doc, dict)
            else {}
        )
        classes = [
            ClassInfo(
                int(r["index"]),
                str(r["name"]),
                str(r.get("folder") or r["name"]),
                str(r.get("mid") or ""),
            )
            for r in rows
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MalformedFileError(
            str(path), f"expected [{{index, name, folder, mid}}]: {exc}"
        ) from exc
    if sorted(c.index for c in classes) != list(range(len(classes))):
        raise MalformedFileError(str(path), "class indexes must be 0..N-1, each once")
    return DatasetClasses(tuple(sorted(classes, key=lambda c: c.index)), task, details)


def _task_and_rows(doc: object) -> tuple[Task, list[Any]]:
    if isinstance(doc, list):
        return "singlelabel", doc
    if not isinstance(doc, dict) or not isinstance(doc.get("classes"), list):
        raise TypeError("neither a list of classes nor {task, classes}")
    task = doc.get("task", "singlelabel")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r} (one of {', '.join(TASKS)})")
    return task, doc["classes"]
