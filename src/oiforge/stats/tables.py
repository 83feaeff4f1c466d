"""The statistics tables, derived from the small results of :mod:`oiforge.stats.queries`.

Every table is an Arrow table (``.to_pandas()`` for a DataFrame). Shares are ``confirmed /
(confirmed + rejected)`` with a 95% Wilson interval; null where nothing was verified.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from oiforge.stats.binning import (
    CONFIDENCE_BINS,
    bin_label,
    frequency_bin,
    frequency_edges,
    threshold_pct,
    wilson_arrays,
)

Namer = Callable[[str], str]
_SUMS = ("machine", "confirmed", "rejected", "conflicting")


@dataclass(frozen=True)
class Cube:
    """The cube as NumPy arrays: ``label`` indexes ``mids`` (unique, in the query's order);
    ``pct`` is the confidence in percent, -1 where missing or invalid; ``counts`` per column."""

    mids: list[str]
    label: npt.NDArray[np.int64]
    pct: npt.NDArray[np.int64]
    counts: dict[str, npt.NDArray[np.int64]]

    @classmethod
    def of(cls, cube: pa.Table) -> Cube:
        encoded = cube.column("label_mid").combine_chunks().dictionary_encode()
        mids = [str(m) for m in encoded.dictionary.to_pylist()]  # first-seen order: sorted
        label = np.asarray(encoded.indices, dtype=np.int64)
        pct = np.asarray(cube.column("conf_pct").fill_null(-1), dtype=np.int64)
        counts = {c: np.asarray(cube.column(c), dtype=np.int64) for c in _SUMS}
        return cls(mids, label, pct, counts)

    @classmethod
    def of_counts(cls, mids: list[str], machine: Sequence[int]) -> Cube:
        """A cube that knows only machine labels per label (no confidences, no verdicts)."""
        n = len(mids)
        counts = {c: np.zeros(n, dtype=np.int64) for c in _SUMS}
        counts["machine"] = np.asarray(machine, dtype=np.int64).reshape(n)
        return cls(mids, np.arange(n, dtype=np.int64), np.full(n, -1, dtype=np.int64), counts)

    def sums(self, keep: npt.NDArray[np.bool_] | None = None) -> dict[str, npt.NDArray[np.int64]]:
        """Per label (aligned with ``mids``): the counts of the rows ``keep`` selects."""
        rows = slice(None) if keep is None else keep
        n = len(self.mids)
        return {
            c: np.bincount(self.label[rows], v[rows], n).astype(np.int64)
            for c, v in self.counts.items()
        }


def _with_shares(cols: dict[str, object], confirmed: np.ndarray, verified: np.ndarray) -> None:
    low, high = wilson_arrays(confirmed, verified)
    has = verified > 0
    share = np.divide(confirmed, np.where(has, verified, 1), dtype=np.float64)
    cols["share"] = pa.array(share, mask=~has)
    cols["ci_low"] = pa.array(low, mask=~has)
    cols["ci_high"] = pa.array(high, mask=~has)


def _lookup(table: pa.Table, value: str, mids: Sequence[str]) -> npt.NDArray[np.int64]:
    """``table[value]`` for each of ``mids`` (0 where a MID has no row)."""
    keys, values = table.column("label_mid").to_pylist(), table.column(value).to_pylist()
    found = dict(zip(keys, values, strict=True))
    return np.array([found.get(m) or 0 for m in mids], dtype=np.int64)


def frequency_table(positives: pa.Table, cube: Cube, name: Namer) -> pa.Table:
    """Images per label (human-verified positives) in the split and in all splits, plus the
    split's machine labels; sorted by frequency (rank 1 = most images)."""
    mids = sorted(set(positives.column("label_mid").to_pylist()) | set(cube.mids))
    images = _lookup(positives, "images", mids)
    total = _lookup(positives, "images_all_splits", mids)
    machine = dict(zip(cube.mids, cube.sums()["machine"].tolist(), strict=True))
    order = sorted(range(len(mids)), key=lambda i: (-images[i], -total[i], mids[i]))
    return pa.table(
        {
            "rank": pa.array(range(1, len(mids) + 1), pa.int64()),
            "label_mid": pa.array([mids[i] for i in order], pa.string()),
            "label_name": pa.array([name(mids[i]) for i in order], pa.string()),
            "images": pa.array(images[order], pa.int64()),
            "images_all_splits": pa.array(total[order], pa.int64()),
            "machine_labels": pa.array([machine.get(mids[i], 0) for i in order], pa.int64()),
        }
    )


def confirmation_table(cube: Cube, positives: pa.Table, name: Namer) -> pa.Table:
    """Per label with machine labels: how many humans verified, and the share confirmed."""
    sums = cube.sums()
    confirmed, rejected = sums["confirmed"], sums["rejected"]
    cols: dict[str, object] = {
        "label_mid": pa.array(cube.mids, pa.string()),
        "label_name": pa.array([name(m) for m in cube.mids], pa.string()),
        "images": pa.array(_lookup(positives, "images", cube.mids), pa.int64()),
        "machine_labels": pa.array(sums["machine"], pa.int64()),
        "verified": pa.array(confirmed + rejected, pa.int64()),
        "confirmed": pa.array(confirmed, pa.int64()),
        "rejected": pa.array(rejected, pa.int64()),
        "conflicting": pa.array(sums["conflicting"], pa.int64()),
    }
    _with_shares(cols, confirmed, confirmed + rejected)
    return pa.table(cols)


def by_confidence(cube: Cube) -> pa.Table:
    """Pooled over labels, per machine-confidence bin of width 0.1 (always all ten bins)."""
    valid = cube.pct >= 0
    bins = np.minimum(cube.pct * CONFIDENCE_BINS // 100, CONFIDENCE_BINS - 1)[valid]
    sums = {
        c: np.bincount(bins, cube.counts[c][valid], CONFIDENCE_BINS).astype(np.int64)
        for c in ("machine", "confirmed", "rejected")
    }
    verified = sums["confirmed"] + sums["rejected"]
    cols: dict[str, object] = {
        "bin": pa.array([bin_label(k) for k in range(CONFIDENCE_BINS)], pa.string()),
        "conf_low": pa.array([k / CONFIDENCE_BINS for k in range(CONFIDENCE_BINS)]),
        "machine_labels": pa.array(sums["machine"], pa.int64()),
        "verified": pa.array(verified, pa.int64()),
        "confirmed": pa.array(sums["confirmed"], pa.int64()),
    }
    _with_shares(cols, sums["confirmed"], verified)
    return pa.table(cols)


def by_frequency(confirmation: pa.Table) -> pa.Table:
    """Labels with verified machine labels, binned by frequency (images, log-spaced bins):
    the pooled share confirmed and the mean of the labels' own shares."""
    verified = np.asarray(confirmation.column("verified"), dtype=np.int64)
    keep = verified > 0
    images = np.asarray(confirmation.column("images"), dtype=np.int64)[keep]
    confirmed = np.asarray(confirmation.column("confirmed"), dtype=np.int64)[keep]
    verified = verified[keep]
    edges = frequency_edges(int(images.max()) if images.size else 0)
    which = np.array([frequency_bin(int(f), edges) for f in images], dtype=np.int64)
    n_bins = len(edges) - 1
    labels = np.bincount(which, minlength=n_bins)
    k = np.bincount(which, confirmed, n_bins).astype(np.int64)
    n = np.bincount(which, verified, n_bins).astype(np.int64)
    own = np.bincount(which, confirmed / np.maximum(verified, 1), n_bins)
    cols: dict[str, object] = {
        "images_from": pa.array(edges[:-1], pa.int64()),
        "images_to": pa.array([e - 1 for e in edges[1:]], pa.int64()),
        "labels": pa.array(labels, pa.int64()),
        "verified": pa.array(n, pa.int64()),
        "confirmed": pa.array(k, pa.int64()),
        "mean_label_share": pa.array(own / np.maximum(labels, 1), mask=labels == 0),
    }
    _with_shares(cols, k, n)
    return pa.table(cols).filter(pa.array(labels > 0))


def precision_table(cube: Cube, thresholds: Sequence[float], name: Namer) -> pa.Table:
    """Per label and threshold t: machine labels kept at ``confidence >= t``, how many of
    them humans verified, and the precision (share confirmed) with its interval."""
    parts = [cube.sums(cube.pct >= threshold_pct(t)) for t in thresholds]
    n = len(cube.mids)
    confirmed = np.stack([p["confirmed"] for p in parts], axis=1).reshape(-1)
    verified = confirmed + np.stack([p["rejected"] for p in parts], axis=1).reshape(-1)
    names = [name(m) for m in cube.mids]
    cols: dict[str, object] = {
        "label_mid": pa.array(
            np.repeat(np.asarray(cube.mids, dtype=object), len(parts)), pa.string()
        ),
        "label_name": pa.array(np.repeat(np.asarray(names, dtype=object), len(parts)), pa.string()),
        "threshold": pa.array(np.tile(np.asarray(thresholds, dtype=np.float64), n)),
        "machine_labels": pa.array(
            np.stack([p["machine"] for p in parts], axis=1).reshape(-1), pa.int64()
        ),
        "verified": pa.array(verified, pa.int64()),
        "confirmed": pa.array(confirmed, pa.int64()),
    }
    _with_shares(cols, confirmed, verified)
    return pa.table(cols).rename_columns([*list(cols)[:-3], "precision", "ci_low", "ci_high"])
