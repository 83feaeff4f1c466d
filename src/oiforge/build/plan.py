"""From selection.parquet (+ store, + exclude list) to the work: image tasks and class table.

- :func:`make_plan` groups the selection's rows by image, gives every sample a key and leaves
  out what the exclude list names (:class:`Exclusion` values, never errors).
- Classes: display names become safe, unique folder names (:func:`make_classes`), indexed in
  sorted folder order like torchvision; the MID of each is kept (classes.json).
- Roles (a selection made with ``multi_label: multi`` or ``negatives``): see
  :func:`single_label_rows` and :func:`multi_label_rows`.
- The ``--exclude-list`` file (:func:`read_exclude_list`): one entry a line,
  ``ImageID[,box_index][,reason]`` (commas or tabs); ``#`` starts a comment.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from oiforge.build.records import Box, RenderTask, SampleTask
from oiforge.contracts.dataset import DATASET_SPLIT_OF, ClassInfo, Task
from oiforge.contracts.excludes import ExcludeList
from oiforge.contracts.journal import rotated_images, store_image_path
from oiforge.contracts.selection import (
    ATTRIBUTION_COLUMNS,
    BACKGROUND,
    NEGATIVE,
    POSITIVE,
    is_image_id,
    read_selection_table,
)

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: Final = ("image_id", "split", "label_mid", "label_name")


# What a selection's ``role`` column means for each build task.
#
# A selection made with ``multi_label: multi`` or ``negatives`` has a ``role`` per row
# (``positive``, ``negative``: a human-verified negative of a selected photo, ``background``: a
# photo added as a negative, "X vs not X"; see :mod:`oiforge.contracts.selection`).
#
# - ``singlelabel`` (:func:`single_label_rows`): every positive row is a sample of its class;
#   verified negatives of a selected photo are not samples (they say what is *not* in it);
#   every background photo is one sample of the ``not <X>`` class (:data:`BACKGROUND_MID`).
# - ``multilabel`` (:func:`multi_label_rows`): one sample per photo, whose
#   :class:`ImageLabels` are its verified positives (``labels``), verified negatives
#   (``negatives``) and machine labels nobody verified (``machine``); every other class is
#   unknown for that photo. A background photo verified as not showing X has X among its
#   negatives; a random one (nobody checked) has no known label at all.

#: ``label_mid`` of the added negatives' class ("not X" is no Open Images class).
BACKGROUND_MID: Final = ""


@dataclass(frozen=True)
class ImageLabels:
    """A photo's known labels (MIDs): verified positives, verified negatives, machine."""

    labels: tuple[str, ...] = ()
    negatives: tuple[str, ...] = ()
    machine: tuple[str, ...] = ()

    def mids(self) -> set[str]:
        return {*self.labels, *self.negatives, *self.machine}


@dataclass
class LabelPlan:
    """The rows a build plans with, and what the labels say beyond them."""

    rows: list[dict[str, Any]]
    labels: dict[str, ImageLabels] = field(default_factory=dict)  # multilabel: per image
    names: dict[str, str] = field(default_factory=dict)  # multilabel: every class MID → name
    background: Counter[str] = field(default_factory=Counter)  # added negatives per source


def _role(row: Mapping[str, Any]) -> str:
    return str(row.get("role") or POSITIVE)


def _background_sources(rows: Sequence[Mapping[str, Any]]) -> Counter[str]:
    """Background photos per source (``verification`` or ``random``)."""
    first: dict[str, str] = {}
    for r in rows:
        if _role(r) == BACKGROUND:
            first.setdefault(str(r.get("image_id")), str(r.get("source") or ""))
    return Counter(first.values())


def single_label_rows(rows: list[dict[str, Any]]) -> LabelPlan:
    """Positives as they are, one ``not X`` row per background photo, no negatives."""
    out, seen = [], set()
    for r in rows:
        role = _role(r)
        if role == NEGATIVE:
            continue
        if role == BACKGROUND:
            if r.get("image_id") in seen:
                continue
            seen.add(r.get("image_id"))
            r = {**r, "label_mid": BACKGROUND_MID}
        out.append(r)
    return LabelPlan(out, background=_background_sources(rows))


def multi_label_rows(rows: list[dict[str, Any]]) -> LabelPlan:
    """One row per photo (its first positive as ``label_mid``) and every photo's labels."""
    by_image: dict[str, list[dict[str, Any]]] = defaultdict(list)
    names: dict[str, str] = {}
    for r in rows:
        by_image[str(r.get("image_id"))].append(r)
        if _role(r) != BACKGROUND and r.get("label_mid"):
            names.setdefault(str(r["label_mid"]), str(r.get("label_name") or ""))
    out, labels = [], {}
    for iid, group in by_image.items():
        found = _image_labels(group)
        labels[iid] = found
        first = found.labels[0] if found.labels else BACKGROUND_MID
        name = names.get(first, "") if found.labels else "(no verified positive)"
        role = POSITIVE if found.labels else BACKGROUND
        out.append({**group[0], "label_mid": first, "label_name": name, "role": role})
    return LabelPlan(out, labels, names, _background_sources(rows))


def _image_labels(group: list[dict[str, Any]]) -> ImageLabels:
    pos, neg, machine = [], [], []
    for r in group:
        mid, role = r.get("label_mid"), _role(r)
        if not mid:
            continue
        if role in (NEGATIVE, BACKGROUND):
            neg.append(str(mid))
        elif r.get("source") == "machine":
            machine.append(str(mid))
        else:
            pos.append(str(mid))
    pos_set = set(pos)
    return ImageLabels(
        tuple(sorted(pos_set)),
        tuple(sorted(set(neg) - pos_set)),
        tuple(sorted(set(machine) - pos_set - set(neg))),
    )


def negatives_source(made: Mapping[str, object]) -> str:
    """Where a dataset's negatives came from, as a token for ``classes.json``:
    ``verified`` (human-verified negatives of the selected photos), ``added:<mode>`` (photos
    added without the classes: ``verified``, ``random`` or ``both``), joined by ``+``;
    ``none`` without either."""
    parts = ["verified"] if made.get("multi_label") == "multi" else []
    added = made.get("negatives") or "none"
    if added != "none":
        parts.append(f"added:{added}")
    return "+".join(parts) or "none"


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
    task: Task = "singlelabel"
    #: ``multilabel``: each image's known labels (its one sample's ``label_mid`` is the first)
    labels: dict[str, ImageLabels] = field(default_factory=dict)
    #: photos added as negatives ("X vs not X"), per source (verification, random)
    background: dict[str, int] = field(default_factory=dict)


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
        elif _no_label(row):
            excluded.append(Exclusion(str(iid), "", str(row.get("label_mid")), None, "no_label"))
        else:
            by_image[str(iid)].append(row)
    return {iid: sorted(rs, key=_row_order) for iid, rs in sorted(by_image.items())}


def _no_label(row: dict[str, Any]) -> bool:
    """No class to export: no MID (an added negative's class has none) or no name."""
    mid = row.get("label_mid")
    if mid is None or (not mid and row.get("role") != BACKGROUND):
        return True
    return not str(row.get("label_name") or "").strip()


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


def make_plan(
    rows: list[dict[str, Any]], store: Path, excludes: ExcludeList, task: Task = "singlelabel"
) -> Plan:
    """Group rows by image, give every sample a key, name the classes, apply the exclude list
    (``multilabel``: one sample per image carrying all its labels, see :mod:`.labels`)."""
    excluded: list[Exclusion] = []
    lp = multi_label_rows(rows) if task == "multilabel" else single_label_rows(rows)
    grouped = _group_rows(lp.rows, excluded)
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
    return Plan(tasks, images, make_classes(_names(lp, grouped)), excluded, task,
                lp.labels, dict(lp.background))  # fmt: skip


def _names(lp: LabelPlan, grouped: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    if lp.labels:
        return lp.names
    return {str(r["label_mid"]): str(r["label_name"]) for rs in grouped.values() for r in rs}


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
