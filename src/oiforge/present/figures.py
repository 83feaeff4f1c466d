"""The deck's arithmetic: confidence intervals, per-class scores, confusions, power-law fits.

Everything here is a pure function of numbers read from the artefacts, so a slide shows the
inputs and the result of each computation side by side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from oiforge.present.facts import Prediction

Z95 = 1.959964


@dataclass(frozen=True)
class Headline:
    """The one number of the results: accuracy (single-label) or mAP (multilabel)."""

    name: str  # "accuracy" | "mAP"
    field: str  # its key in metrics.json
    value: float
    samples: int
    interval: tuple[float, float] | None


@dataclass(frozen=True)
class ClassScore:
    name: str
    score: float  # recall (single-label) or AP (multilabel)
    support: int
    precision: float = math.nan
    f1: float = math.nan
    interval: tuple[float, float] | None = None


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (sound for small n and for 0% or 100%)."""
    if n <= 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))  # p in it, exactly


def headline(metrics: Mapping[str, Any]) -> Headline:
    samples = int(metrics.get("samples") or 0)
    if "map" in metrics:
        return Headline("mAP", "map", float(metrics["map"]), samples, None)
    acc = float(metrics["accuracy"])
    return Headline("accuracy", "accuracy", acc, samples, wilson(round(acc * samples), samples))


def class_scores(metrics: Mapping[str, Any]) -> list[ClassScore]:
    """Per-class recall with its interval (single-label), or AP (multilabel), in class order."""
    per = metrics.get("per_class") or []
    if isinstance(per, Mapping):  # multilabel: {name: {ap, support, ...}}
        return [
            ClassScore(str(n), float(v.get("ap", math.nan)), int(v.get("support") or 0))
            for n, v in per.items()
            if isinstance(v, Mapping)
        ]
    out = []
    for row in per:
        support = int(row.get("support") or 0)
        recall = float(row.get("recall", math.nan))
        hits = round(recall * support) if support else 0
        out.append(
            ClassScore(
                str(row["name"]),
                recall,
                support,
                float(row.get("precision", math.nan)),
                float(row.get("f1", math.nan)),
                wilson(hits, support),
            )
        )
    return out


def confusions(metrics: Mapping[str, Any], names: Sequence[str]) -> list[tuple[str, str, int]]:
    """Off-diagonal cells of the confusion matrix, largest first: (true, predicted, count)."""
    matrix = metrics.get("confusion") or []
    cells = [
        (names[t], names[p], int(n))
        for t, row in enumerate(matrix[: len(names)])
        for p, n in enumerate(row[: len(names)])
        if t != p and n
    ]
    return sorted(cells, key=lambda c: (-c[2], c[0], c[1]))


CONFIDENT = 0.5


def confident_mistakes(predictions: Sequence[Prediction], at: float = CONFIDENT) -> list[str]:
    """Keys of wrong predictions made with confidence >= ``at``, most confident first."""
    wrong = [p for p in predictions if p.true != p.predicted and p.confidence >= at]
    return [p.key for p in sorted(wrong, key=lambda p: (-p.confidence, p.key))]


def source_id(key: str) -> str:
    """The photo a sample key comes from: ``test-0.tar/<id>`` or ``test/Cat/<id>_2.jpg``."""
    return key.rsplit("/", 1)[-1].split(".", 1)[0].split("_", 1)[0]


@dataclass(frozen=True)
class PowerFit:
    """``error(n) = a * n ** -b`` fitted to (training images, error) points in log-log space."""

    a: float
    b: float
    points: int

    def error_at(self, n: float) -> float:
        return float(self.a * n**-self.b)

    def images_for(self, target_error: float) -> float:
        """Training images at which the fit reaches ``target_error`` (inf if it never does)."""
        if self.b <= 0 or target_error <= 0:
            return math.inf
        return float((self.a / target_error) ** (1 / self.b))


def power_fit(points: Sequence[tuple[float, float]], floor: float) -> PowerFit | None:
    """Least squares of log(error) on log(n); errors are clipped at ``floor`` (half a test
    mistake: a measured 0 errors still means an unknown, small error). None for < 2 sizes."""
    pts = [(n, max(err, floor)) for n, err in points if n > 0 and not math.isnan(err)]
    if len({n for n, _ in pts}) < 2:
        return None
    xs = [math.log(n) for n, _ in pts]
    ys = [math.log(e) for _, e in pts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return PowerFit(math.exp(my - slope * mx), -slope, len(pts))
