"""Pure arithmetic of the label-quality statistics: confidence bins, thresholds, intervals.

Machine confidences are handled as integer percents (``round(confidence * 100)``; the
official files use steps of 0.1), so a threshold ``t`` keeps the labels with
``pct >= round(t * 100)``: the same labels ``select --min-confidence t`` keeps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from oiforge.errors import InvalidInputError

#: The thresholds of the precision table unless the caller names others.
DEFAULT_THRESHOLDS: Final = (0.5, 0.6, 0.7, 0.8, 0.9)
#: Confidence bins of width 0.1: bin k holds [k/10, (k+1)/10), the last one also 1.0.
CONFIDENCE_BINS: Final = 10
#: z of a two-sided 95% interval.
Z95: Final = 1.959963984540054


def confidence_bin(pct: int) -> int:
    """The bin (0..9) of a confidence given in percent (0..100)."""
    if not 0 <= pct <= 100:
        raise ValueError(f"confidence percent out of range: {pct}")
    return min(pct * CONFIDENCE_BINS // 100, CONFIDENCE_BINS - 1)


def bin_label(k: int) -> str:
    """``"0.7-0.8"`` for bin 7 (the last bin reads ``"0.9-1.0"`` and includes 1.0)."""
    return f"{k / CONFIDENCE_BINS:.1f}-{(k + 1) / CONFIDENCE_BINS:.1f}"


def threshold_pct(threshold: float) -> int:
    """A threshold in percent; it must lie in [0, 1] on a 0.01 grid."""
    if not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
        raise InvalidInputError(f"a confidence threshold must be within [0, 1], not {threshold}")
    pct = round(threshold * 100)
    if abs(pct - threshold * 100) > 1e-6:
        raise InvalidInputError(f"confidence thresholds go in steps of 0.01, not {threshold}")
    return pct


def parse_thresholds(thresholds: Iterable[float]) -> tuple[float, ...]:
    """Sorted, unique, validated thresholds (at least one)."""
    pcts = sorted({threshold_pct(t) for t in thresholds})
    if not pcts:
        raise InvalidInputError("give at least one confidence threshold")
    return tuple(p / 100 for p in pcts)


def wilson(confirmed: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when there is nothing to go on."""
    if total <= 0:
        return 0.0, 1.0
    p = confirmed / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_arrays(
    confirmed: npt.ArrayLike, total: npt.ArrayLike, z: float = Z95
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """:func:`wilson` element-wise (NumPy)."""
    k = np.asarray(confirmed, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)
    safe = np.where(n > 0, n, 1.0)
    p = k / safe
    denom = 1 + z * z / safe
    centre = (p + z * z / (2 * safe)) / denom
    half = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe)) / denom
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    return low, high


def share(confirmed: int, total: int) -> float | None:
    """``confirmed / total``, or None when nothing was verified."""
    return confirmed / total if total > 0 else None


def frequency_edges(largest: int) -> list[int]:
    """Bin edges 0, 1, 2, 5, 10, 20, 50, ... (log-spaced) covering ``largest``.

    Bin ``i`` holds frequencies in ``[edges[i], edges[i + 1])``; bin 0 is frequency 0.
    """
    edges: list[int] = []
    power = 1
    while not edges or edges[-1] <= max(largest, 1):
        edges += [m * power for m in (1, 2, 5) if not edges or m * power > edges[-1]]
        power *= 10
    while len(edges) > 2 and edges[-2] > max(largest, 1):
        edges.pop()
    return [0, *edges]


def frequency_bin(frequency: int, edges: Sequence[int]) -> int:
    """The bin of ``frequency`` (>= 0) among ``edges`` from :func:`frequency_edges`."""
    for i in range(len(edges) - 1):
        if edges[i] <= frequency < edges[i + 1]:
            return i
    raise ValueError(f"frequency {frequency} outside {edges[0]}..{edges[-1]}")


def recommend(
    rows: Sequence[tuple[float, int, int]], target: float, z: float = Z95
) -> tuple[float, float, int] | None:
    """The lowest threshold whose precision is at least ``target`` with ~95% confidence.

    ``rows`` are ``(threshold, confirmed, verified)``; the answer is ``(threshold, lower
    bound, verified)``, or None when no threshold has the evidence.
    """
    for threshold, confirmed, verified in sorted(rows):
        low, _ = wilson(confirmed, verified, z)
        if verified > 0 and low >= target:
            return threshold, low, verified
    return None
