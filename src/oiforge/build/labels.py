"""What a selection's ``role`` column means for each build task.

A selection made with ``multi_label: multi`` or ``negatives`` has a ``role`` per row
(``positive``, ``negative``: a human-verified negative of a selected photo, ``background``: a
photo added as a negative, "X vs not X"; see :mod:`oiforge.contracts.selection`).

- ``singlelabel`` (:func:`single_label_rows`): every positive row is a sample of its class;
  verified negatives of a selected photo are not samples (they say what is *not* in it);
  every background photo is one sample of the ``not <X>`` class (:data:`BACKGROUND_MID`).
- ``multilabel`` (:func:`multi_label_rows`): one sample per photo, whose
  :class:`ImageLabels` are its verified positives (``labels``), verified negatives
  (``negatives``) and machine labels nobody verified (``machine``); every other class is
  unknown for that photo. A background photo verified as not showing X has X among its
  negatives; a random one (nobody checked) has no known label at all.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from oiforge.contracts.selection import BACKGROUND, NEGATIVE, POSITIVE

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


def negatives_words(made: Mapping[str, object], background: Mapping[str, int]) -> list[str]:
    """The card's plain-words account of where the negatives came from."""
    lines = []
    if made.get("multi_label") == "multi":
        down = " and expanded down the class hierarchy" if made.get("expand_up") else ""
        lines.append(
            "- Negatives of the selected photos: labels a person verified as *not* in the "
            f"photo (Open Images human-verified labels with Confidence 0){down}."
        )
    if background:
        kinds = {"verification": "humans verified as not showing the classes",
                 "random": "drawn at random among photos with no positive label of the "
                           "classes or their sub-classes (nobody checked them)"}  # fmt: skip
        for source, n in sorted(background.items()):
            lines.append(f"- {n} photos added as negatives: {kinds.get(source, source)}.")
    if made.get("min_confidence") is not None:
        lines.append(
            f"- Machine labels at confidence >= {made['min_confidence']} that no person "
            "verified are kept apart (`machine`), never counted as verified."
        )
    return lines or ["- No negatives: only the photos' verified positive labels."]
