"""The sample's multi-label block: photos with several classes, verified negatives, unknowns.

:data:`MULTILABEL_CLASSES` (six foods: Sandwich with its real sub-classes Hamburger and
Submarine sandwich, Hot dog, Pizza, Ice cream) is the documented class set. The block adds
:data:`BLOCK_IMAGES` photos, each with 2-4 human-verified positives of the set, 1-3 verified
negatives of it, the rest of it *unknown* (no human row), and on some photos machine labels
of unknown classes. Its draws come from their own random stream, after everything else is
planned, so every other fact of the sample stays what it was.

:func:`multilabel_facts` then computes the known answers over the whole sample (the rest of
the sample has positives and negatives of these classes too): per photo with a verified
positive of the set, its ``labels``, ``negatives`` and ``machine`` labels, and per class and
split the positive, negative and unknown photo counts, twice: as verified (``plain``), and
expanded along the hierarchy (``expand_up``: a positive also counts for the set's ancestors
of its class, a negative for the set's descendants; a positive wins a contradiction).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from typing import Final

import numpy as np

from oiforge.mirror.labels import LabelRow, Labels
from oiforge.mirror.plan import OBJECT_CLASSES, PlannedImage, _boxes, _plan_one

_BY_NAME: Final = {c.name: c for c in OBJECT_CLASSES}
MULTILABEL_CLASSES: Final = tuple(
    _BY_NAME[n]
    for n in ("Sandwich", "Hamburger", "Submarine sandwich", "Hot dog", "Pizza", "Ice cream")
)
#: Sub-class links among the set, as in the real hierarchy (tests/mirror checks them).
SUBCLASSES: Final = {"/m/0l515": ("/m/0cdn1", "/m/06pcq")}
BLOCK_IMAGES: Final = 36
_SPLITS: Final = ("train",) * 24 + ("validation",) * 6 + ("test",) * 6
_SPLIT_ORDER: Final = ("train", "validation", "test")


def plan_block(
    seed: int, taken: list[PlannedImage]
) -> tuple[list[PlannedImage], list[LabelRow], list[LabelRow]]:
    """The block's photos (after ``taken``) and their human and machine label rows."""
    rng = np.random.default_rng([seed, 20])
    seen = {im.image_id for im in taken}
    splits = [_SPLITS[int(i)] for i in rng.permutation(len(_SPLITS))]
    images, human, machine = [], [], []
    for k, split in enumerate(splits):
        picked = [MULTILABEL_CLASSES[int(i)] for i in rng.permutation(len(MULTILABEL_CLASSES))]
        n_pos = int(rng.integers(2, 5))
        n_neg = int(rng.integers(1, 4))
        positives, negatives = picked[:n_pos], picked[n_pos : n_pos + n_neg]
        image = _plan_one(rng, len(taken) + k, positives, split, seen)
        image.boxes = _boxes(rng, positives, split)
        image.negatives = negatives
        images.append(image)
        human += _human(rng, image)
        for cls in picked[n_pos + n_neg :]:  # unknown: sometimes a machine label says so
            if rng.random() < 0.5:
                conf = f"{int(rng.integers(5, 11)) / 10:.1f}"
                machine.append(LabelRow(image.image_id, "machine", cls.mid, conf))
    return images, human, machine


def _human(rng: np.random.Generator, image: PlannedImage) -> list[LabelRow]:
    rows = []
    for cls in image.classes:
        source = "crowdsource-verification" if rng.random() < 0.1 else "verification"
        rows.append(LabelRow(image.image_id, source, cls.mid, "1"))
    rows += [LabelRow(image.image_id, "verification", c.mid, "0") for c in image.negatives]
    return rows


def _ancestors(mid: str) -> set[str]:
    return {parent for parent, kids in SUBCLASSES.items() if mid in kids}


def _descendants(mid: str) -> set[str]:
    return set(SUBCLASSES.get(mid, ()))


def _answers(
    images: list[PlannedImage], human: list[LabelRow], machine: list[LabelRow], expand_up: bool
) -> dict[str, object]:
    mids = [c.mid for c in MULTILABEL_CLASSES]
    pos: dict[str, set[str]] = defaultdict(set)
    neg: dict[str, set[str]] = defaultdict(set)
    for row in human:
        if row.confidence == "1":
            credited = {row.mid} | (_ancestors(row.mid) if expand_up else set())
            pos[row.image_id] |= credited & set(mids)
        elif row.confidence == "0":
            credited = {row.mid} | (_descendants(row.mid) if expand_up else set())
            neg[row.image_id] |= credited & set(mids)
    split_of = {im.image_id: im.split for im in images}
    verified = {(i, m) for i in pos for m in pos[i] | neg[i]}
    said_no = {(row.image_id, row.mid) for row in human if row.confidence == "0"}
    unverified: dict[str, dict[str, float]] = defaultdict(dict)
    for row in machine:  # a machine label counts where no human verified it or its class
        if (row.image_id, row.mid) in said_no:
            continue
        credited = {row.mid} | (_ancestors(row.mid) if expand_up else set())
        for m in sorted(credited & set(mids)):
            if (row.image_id, m) not in verified:
                best = max(float(row.confidence), unverified[row.image_id].get(m, 0.0))
                unverified[row.image_id][m] = best
    per_image: dict[str, dict[str, object]] = {
        iid: {
            "split": split_of[iid],
            "labels": [m for m in mids if m in pos[iid]],
            "negatives": [m for m in mids if m in neg[iid] - pos[iid]],
            "machine": dict(sorted(unverified[iid].items())),
        }
        for iid in sorted(i for i in pos if pos[i])
    }
    return {"images": per_image, "counts": _counts(per_image, mids)}


def _counts(per_image: dict[str, dict[str, object]], mids: list[str]) -> dict[str, object]:
    out: dict[str, dict[str, dict[str, int]]] = {
        m: {s: {"positive": 0, "negative": 0, "unknown": 0} for s in _SPLIT_ORDER} for m in mids
    }
    for facts in per_image.values():
        split = str(facts["split"])
        labels, negatives = facts["labels"], facts["negatives"]
        assert isinstance(labels, list) and isinstance(negatives, list)
        for m in mids:
            kind = "positive" if m in labels else "negative" if m in negatives else "unknown"
            out[m][split][kind] += 1
    return dict(out)


def multilabel_facts(
    images: list[PlannedImage], human: list[LabelRow], machine: list[LabelRow]
) -> dict[str, object]:
    """The ``multilabel`` block of ``sample.json`` (see the module docstring)."""
    return {
        "definition": (
            "select classes=MULTILABEL_CLASSES, multi_label=multi: per photo with a "
            "human-verified positive of the set, its verified positives (labels), verified "
            "negatives that are not positives (negatives) and unverified machine labels "
            "(machine, with confidence); any other class of the set is unknown. counts: "
            "photos per class and split. expand_up: the same with hierarchy expansion."
        ),
        "classes": [{"mid": c.mid, "name": c.name} for c in MULTILABEL_CLASSES],
        "subclasses": {k: list(v) for k, v in SUBCLASSES.items()},
        "plain": _answers(images, human, machine, expand_up=False),
        "expand_up": _answers(images, human, machine, expand_up=True),
    }


def with_block(
    labels: Labels, images: list[PlannedImage], human: list[LabelRow], machine: list[LabelRow]
) -> Labels:
    """``labels`` plus the block's rows; each class's planted frequency (``positives`` per
    split) counted again over ``images`` (the block's machine labels are on unverified
    classes only, so the planted confirmation rates stay exact)."""
    rates = []
    for rate in labels.rates:
        per_split = Counter(im.split for im in images if any(c.mid == rate.mid for c in im.classes))
        rates.append(replace(rate, positives=tuple(sorted(per_split.items()))))
    return Labels(labels.human + human, labels.machine + machine, rates)
