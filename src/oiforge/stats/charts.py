"""PNG charts of the statistics (matplotlib's object API, no pyplot state; written atomically).

Each function returns the PNG bytes; :func:`oiforge.stats.write.write_stats` names the files.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_SIZE = (8.0, 4.8)
_DPI = 110


def _figure() -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
    return fig, fig.add_subplot()


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _col(table: pa.Table, name: str) -> np.ndarray[Any, Any]:
    return np.array(table.column(name).to_pylist(), dtype=np.float64)


def frequency_chart(frequency: pa.Table, split: str) -> bytes:
    """Images per label, sorted, log scale: the split and all splits (the long tail)."""
    fig, ax = _figure()
    for column, label in (("images", split), ("images_all_splits", "all splits")):
        values = np.sort(_col(frequency, column))[::-1]
        values = values[values > 0]
        if values.size:
            ax.plot(np.arange(1, values.size + 1), values, label=f"{label} ({values.size:,})")
    ax.set_yscale("log")
    ax.set_xlabel("labels, most frequent first")
    ax.set_ylabel("images with a human-verified label")
    ax.set_title("Label frequency")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return _png(fig)


def confirmation_vs_frequency_chart(confirmation: pa.Table, binned: pa.Table) -> bytes:
    """Per label (dots, size ~ verified) and pooled per frequency bin (line with 95% CI)."""
    fig, ax = _figure()
    images, verified = _col(confirmation, "images"), _col(confirmation, "verified")
    share = np.array(confirmation.column("share").to_pylist(), dtype=np.float64)
    dots = (verified > 0) & (images > 0)
    if dots.any():
        ax.scatter(images[dots], share[dots], s=8 + 40 * np.sqrt(verified[dots] / verified.max()),
                   alpha=0.35, label="labels (size: verified)")  # fmt: skip
    shown = _col(binned, "images_from") > 0
    if shown.any():
        low, high = _col(binned, "images_from")[shown], _col(binned, "images_to")[shown]
        mid = np.sqrt(low * np.maximum(high, low))
        _line_with_ci(ax, mid, binned, shown, "pooled per frequency bin")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("label frequency (images with a human-verified label)")
    ax.set_ylabel("share of machine labels confirmed")
    ax.set_title("Machine labels confirmed by humans vs label frequency")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return _png(fig)


def _line_with_ci(ax: Axes, x: np.ndarray[Any, Any], table: pa.Table,
                  rows: np.ndarray[Any, Any], label: str) -> None:  # fmt: skip
    share = np.array(table.column("share").to_pylist(), dtype=np.float64)[rows]
    low = np.array(table.column("ci_low").to_pylist(), dtype=np.float64)[rows]
    high = np.array(table.column("ci_high").to_pylist(), dtype=np.float64)[rows]
    ok = ~np.isnan(share)
    err = np.maximum(np.vstack([share[ok] - low[ok], high[ok] - share[ok]]), 0.0)
    ax.errorbar(x[ok], share[ok], yerr=err, marker="o", capsize=3, color="C1", label=label)


def confirmation_vs_confidence_chart(binned: pa.Table) -> bytes:
    """Share confirmed per machine-confidence bin, with 95% CIs and the verified counts."""
    fig, ax = _figure()
    x = _col(binned, "conf_low") + 0.05
    rows = np.ones(binned.num_rows, dtype=bool)
    _line_with_ci(ax, x, binned, rows, "share confirmed (95% CI)")
    for xi, n in zip(x, binned.column("verified").to_pylist(), strict=True):
        if n:
            ax.annotate(f"{n:,}", (xi, 0.02), ha="center", fontsize=7, alpha=0.7)
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("machine confidence (bins of 0.1; numbers: verified labels)")
    ax.set_ylabel("share of machine labels confirmed")
    ax.set_title("Machine labels confirmed by humans vs machine confidence")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _png(fig)


def precision_chart(precision: pa.Table, mids: Sequence[str]) -> bytes:
    """Precision vs threshold: pooled over all labels, and one line per label in ``mids``."""
    fig, ax = _figure()
    t = _col(precision, "threshold")
    thresholds, which = np.unique(t, return_inverse=True)
    confirmed = np.bincount(which, _col(precision, "confirmed"), len(thresholds))
    verified = np.bincount(which, _col(precision, "verified"), len(thresholds))
    pooled = np.divide(
        confirmed, verified, out=np.full(len(thresholds), np.nan), where=verified > 0
    )
    ax.plot(thresholds, pooled, marker="o", lw=2.5, color="black", label="all labels (pooled)")
    named = precision.filter(pc.is_in(precision["label_mid"], pa.array(list(mids), pa.string())))
    rows = named.to_pylist()
    for mid in mids:
        mine = [r for r in rows if r["label_mid"] == mid and r["verified"]]
        if mine:
            ax.plot([r["threshold"] for r in mine], [r["precision"] for r in mine],
                    marker=".", alpha=0.8, label=str(mine[0]["label_name"])[:30])  # fmt: skip
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("--min-confidence threshold")
    ax.set_ylabel("precision (share confirmed by humans)")
    ax.set_title("Precision of machine labels at confidence thresholds")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)
