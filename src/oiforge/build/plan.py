"""From selection.parquet (+ store, + exclude list) to the work: image tasks and class table.

- :func:`make_plan` groups the selection's rows by image, gives every sample a key and leaves
  out what the exclude list names (:class:`Exclusion` values, never errors).
- Classes: display names become safe, unique folder names (:func:`make_classes`), indexed in
  sorted folder order like torchvision; the MID of each is kept (classes.json).
- The ``--exclude-list`` file (:func:`read_exclude_list`): one entry a line,
  ``ImageID[,box_index][,reason]`` (commas or tabs); ``#`` starts a comment.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from oiforge.build.records import Box, RenderTask, SampleTask
from oiforge.contracts.dataset import DATASET_SPLIT_OF, ClassInfo
from oiforge.contracts.excludes import ExcludeList
from oiforge.contracts.journal import rotated_images, store_image_path
from oiforge.contracts.selection import ATTRIBUTION_COLUMNS, is_image_id, read_selection_table

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: Final = ("image_id", "split", "label_mid", "label_name")


@dataclass(frozen=True)
class Exclusion:
    """A sample (or a whole image when ``key`` is empty) left out, and why."""

    image_id: str
    key: str
    label_mid: str
    box_index: int | None
    reason: str


@dataclass(frozen=True)
class ImageMeta:
    """What the dataset says about a source image: its official split and attribution."""

    image_id: str
    official_split: str  # train | val | test
    attribution: dict[str, str]


@dataclass
class Plan:
    """Everything the build needs to know before decoding anything."""

    tasks: list[RenderTask]
    images: dict[str, ImageMeta]
    classes: list[ClassInfo]
    excluded: list[Exclusion] = field(default_factory=list)


def read_selection(path: Path) -> list[dict[str, Any]]:
    """The selection rows (only the contract's columns that are present)."""
    rows: list[dict[str, Any]] = read_selection_table(path, required=REQUIRED_COLUMNS).to_pylist()
    return rows


def _box_of(row: dict[str, Any]) -> Box | None:
    coords = [row.get(k) for k in ("x_min", "x_max", "y_min", "y_max")]
    if all(c is None for c in coords):
        return None
    vals = [float(c) if c is not None else math.nan for c in coords]
    return Box(vals[0], vals[1], vals[2], vals[3])


def _keys(image_id: str, rows: list[dict[str, Any]]) -> list[str]:
    """``<id>`` for a lone whole-image sample, else ``<id>_<box_index or rank>``, unique."""
    if len(rows) == 1 and _box_of(rows[0]) is None:
        return [image_id]
    used: set[str] = set()
    keys = []
    for rank, row in enumerate(rows):
        idx = row.get("box_index")
        key = f"{image_id}_{idx}" if isinstance(idx, int) and idx >= 0 else f"{image_id}_{rank}"
        while key in used:
            key = f"{key}x"
        used.add(key)
        keys.append(key)
    return keys


def _row_order(row: dict[str, Any]) -> tuple[int, str]:
    idx = row.get("box_index")
    return (idx if isinstance(idx, int) else -1, str(row.get("label_mid")))


def _group_rows(
    rows: list[dict[str, Any]], excluded: list[Exclusion]
) -> dict[str, list[dict[str, Any]]]:
    by_image: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        iid = row.get("image_id")
        if not is_image_id(iid):
            excluded.append(
                Exclusion(str(iid)[:64], "", str(row.get("label_mid")), None, "invalid_image_id")
            )
        elif not row.get("label_mid") or not str(row.get("label_name") or "").strip():
            excluded.append(Exclusion(str(iid), "", str(row.get("label_mid")), None, "no_label"))
        else:
            by_image[str(iid)].append(row)
    return {iid: sorted(rs, key=_row_order) for iid, rs in sorted(by_image.items())}


def _meta(image_id: str, row: dict[str, Any]) -> ImageMeta | None:
    split = DATASET_SPLIT_OF.get(str(row.get("split")), "")
    attribution = {k: str(row.get(k) or "") for k in ATTRIBUTION_COLUMNS}
    return ImageMeta(image_id, split, attribution)


def _samples(
    image_id: str, rows: list[dict[str, Any]], excludes: ExcludeList, excluded: list[Exclusion]
) -> list[SampleTask]:
    samples = []
    for key, row in zip(_keys(image_id, rows), rows, strict=True):
        box = _box_of(row)
        idx = row.get("box_index") if box is not None else None
        s = SampleTask(key, str(row["label_mid"]), idx, box)
        reason = excludes.reason(image_id, idx, s.label_mid)
        if reason is not None:
            excluded.append(Exclusion(image_id, key, s.label_mid, idx, f"exclude_list: {reason}"))
        else:
            samples.append(s)
    return samples


def make_plan(rows: list[dict[str, Any]], store: Path, excludes: ExcludeList) -> Plan:
    """Group rows by image, give every sample a key, name the classes, apply the exclude list."""
    excluded: list[Exclusion] = []
    grouped = _group_rows(rows, excluded)
    upright = rotated_images(store)
    tasks, images = [], {}
    for iid, rs in grouped.items():
        meta = _meta(iid, rs[0])
        assert meta is not None
        samples = _samples(iid, rs, excludes, excluded)
        if not samples:
            continue
        images[iid] = meta
        rotation = None if iid in upright else rs[0].get("rotation")
        tasks.append(RenderTask(iid, str(store_image_path(store, iid)), rotation, tuple(samples)))
    names = {str(r["label_mid"]): str(r["label_name"]) for rs in grouped.values() for r in rs}
    return Plan(tasks, images, make_classes(names), excluded)


_UNSAFE: Final = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')
_SPACE: Final = re.compile(r"\s+")
_RESERVED: Final = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}
)
MAX_FOLDER_LEN: Final = 100


def safe_folder_name(name: str) -> str:
    """A folder name that works on every OS and loader: no separators, no spaces, not hidden."""
    text = unicodedata.normalize("NFC", name).strip()
    text = _UNSAFE.sub("_", _SPACE.sub("_", text)).strip("._ ")
    if not text or text.lower() in _RESERVED:
        text = f"class_{text}".rstrip("_")
    return text[:MAX_FOLDER_LEN]


def _mid_suffix(mid: str) -> str:
    return safe_folder_name(mid.replace("/", "_")) or "x"


def make_classes(names_by_mid: dict[str, str]) -> list[ClassInfo]:
    """Classes with unique folders (case-insensitively), indexed in sorted folder order."""
    folders = {mid: safe_folder_name(name) for mid, name in names_by_mid.items()}
    clashes: dict[str, list[str]] = defaultdict(list)
    for mid, folder in folders.items():
        clashes[folder.casefold()].append(mid)
    for mids in clashes.values():
        if len(mids) > 1:
            for mid in mids:
                folders[mid] = f"{folders[mid][: MAX_FOLDER_LEN - 20]}__{_mid_suffix(mid)}"
    seen: set[str] = set()
    for mid in sorted(folders):  # MIDs that still clash after the suffix get a number
        base, n = folders[mid], 1
        while folders[mid].casefold() in seen:
            n += 1
            folders[mid] = f"{base}_{n}"
        seen.add(folders[mid].casefold())
    ordered = sorted(folders.items(), key=lambda kv: (kv[1], kv[0]))
    return [ClassInfo(i, names_by_mid[mid], folder, mid) for i, (mid, folder) in enumerate(ordered)]


def reindex(classes: list[ClassInfo], keep: set[str]) -> list[ClassInfo]:
    """Only the classes whose MID is in ``keep``, indexed again from 0 in folder order."""
    kept = [c for c in classes if c.mid in keep]
    return [ClassInfo(i, c.name, c.folder, c.mid) for i, c in enumerate(kept)]
