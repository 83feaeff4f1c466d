"""Image-level labels of the sample: human-verified rows and machine rows.

Machine labels carry a *planted* confirmation rate per class: among the (image, class) pairs
that have both a machine label and a human verification, the share the humans confirmed
(Confidence 1). It is exact by construction and written to ``sample.json`` with its cells
(split x machine confidence -> confirmed, rejected), so per-split rates and the precision at
any confidence threshold are known too. Three classes get fixed targets (``FIXED_TARGETS``:
0.9, 0.6, 0.3); the others draw theirs from ``CONFIRM_TARGETS``. Confirmed machine labels
have confidence 0.5-1.0, rejected ones 0.1-0.7, so precision rises with the threshold.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final

import numpy as np

from oiforge.mirror.plan import CONTEXT_MIDS, SAMPLE_CLASSES, PlannedImage

CONFIRM_TARGETS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
#: Classes with a fixed planted confirmation target: Dog 0.9, Cat 0.6, Banana 0.3.
FIXED_TARGETS: Final = {"/m/0bt9lr": 0.9, "/m/01yrx": 0.6, "/m/09qck": 0.3}


@dataclass(frozen=True)
class LabelRow:
    """One row of an image-level label file."""

    image_id: str
    source: str
    mid: str
    confidence: str


@dataclass(frozen=True)
class ConfirmationRate:
    """The planted machine-label confirmation of one class.

    ``cells`` are ``(split, machine confidence, confirmed, rejected)``, sorted; ``positives``
    are the human-verified positive images per split (the class's planted frequency).
    """

    mid: str
    confirmed: int
    rejected: int
    target: float = 0.0
    cells: tuple[tuple[str, str, int, int], ...] = ()
    positives: tuple[tuple[str, int], ...] = ()

    @property
    def rate(self) -> float:
        return self.confirmed / (self.confirmed + self.rejected)

    def facts(self) -> dict[str, object]:
        """The ``sample.json`` entry of this class."""
        return {
            "confirmed": self.confirmed, "rejected": self.rejected, "rate": self.rate,
            "target": self.target, "positives": dict(self.positives),
            "cells": [list(cell) for cell in self.cells],
        }  # fmt: skip


@dataclass(frozen=True)
class Labels:
    """All label rows (unsorted) and the planted rates."""

    human: list[LabelRow]
    machine: list[LabelRow]
    rates: list[ConfirmationRate]


def _conf(rng: np.random.Generator, low: int, high: int) -> str:
    return f"{int(rng.integers(low, high + 1)) / 10:.1f}"


def _human_rows(rng: np.random.Generator, images: list[PlannedImage]) -> list[LabelRow]:
    rows = []
    for image in images:
        for cls in image.classes:
            source = "crowdsource-verification" if rng.random() < 0.1 else "verification"
            rows.append(LabelRow(image.image_id, source, cls.mid, "1"))
        rows += [LabelRow(image.image_id, "verification", c.mid, "0") for c in image.negatives]
    return rows


def _subset(rng: np.random.Generator, items: list[PlannedImage], size: int) -> list[PlannedImage]:
    """``size`` items drawn without replacement, kept in their original order."""
    return [items[int(i)] for i in np.sort(rng.choice(len(items), size=size, replace=False))]


def _plant_class(
    rng: np.random.Generator, mid: str, images: list[PlannedImage]
) -> tuple[list[LabelRow], list[LabelRow], ConfirmationRate]:
    positives = [im for im in images if any(c.mid == mid for c in im.classes)]
    others = [im for im in images if all(c.mid != mid for c in im.classes)]
    confirmed = _subset(rng, positives, max(1, round(0.8 * len(positives))))
    drawn = CONFIRM_TARGETS[int(rng.integers(len(CONFIRM_TARGETS)))]
    target = FIXED_TARGETS.get(mid, drawn)
    n_rejected = max(1, round(len(confirmed) * (1 - target) / target))
    rejected = _subset(rng, others, n_rejected)
    machine = [LabelRow(im.image_id, "machine", mid, _conf(rng, 5, 10)) for im in confirmed]
    machine += [LabelRow(im.image_id, "machine", mid, _conf(rng, 1, 7)) for im in rejected]
    human = [
        LabelRow(im.image_id, "verification", mid, "0")
        for im in rejected
        if all(c.mid != mid for c in im.negatives)
    ]
    return machine, human, _rate(mid, target, machine, len(confirmed), images)


def _rate(
    mid: str, target: float, machine: list[LabelRow], n_confirmed: int,
    images: list[PlannedImage],
) -> ConfirmationRate:  # fmt: skip
    """The planted counts of one class; the first ``n_confirmed`` machine rows are confirmed."""
    split_of = {im.image_id: im.split for im in images}
    cells: Counter[tuple[str, str, bool]] = Counter()
    for k, row in enumerate(machine):
        cells[(split_of[row.image_id], row.confidence, k < n_confirmed)] += 1
    keys = sorted({(split, conf) for split, conf, _ in cells})
    table = tuple((s, c, cells[(s, c, True)], cells[(s, c, False)]) for s, c in keys)
    per_split = Counter(im.split for im in images if any(c.mid == mid for c in im.classes))
    n_rejected = len(machine) - n_confirmed
    return ConfirmationRate(
        mid, n_confirmed, n_rejected, target, table, tuple(sorted(per_split.items()))
    )


def _context_rows(rng: np.random.Generator, images: list[PlannedImage]) -> list[LabelRow]:
    rows = []
    for image in images:
        for i in rng.choice(len(CONTEXT_MIDS), size=int(rng.integers(0, 3)), replace=False):
            rows.append(
                LabelRow(image.image_id, "machine", CONTEXT_MIDS[int(i)], _conf(rng, 1, 10))
            )
    return rows


def make_labels(seed: int, images: list[PlannedImage]) -> Labels:
    """Human and machine label rows for ``images`` and the planted confirmation rates."""
    rng = np.random.default_rng([seed, 2])
    human = _human_rows(rng, images)
    machine: list[LabelRow] = []
    rates = []
    for cls in SAMPLE_CLASSES:
        more_machine, more_human, rate = _plant_class(rng, cls.mid, images)
        machine += more_machine
        human += more_human
        rates.append(rate)
    machine += _context_rows(rng, images)
    return Labels(human, machine, rates)


def sorted_rows(rows: list[LabelRow]) -> list[LabelRow]:
    """Rows in the official order: by ImageID, then LabelName."""
    return sorted(rows, key=lambda r: (r.image_id, r.mid, r.source))
