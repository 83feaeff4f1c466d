"""Evaluation plots as PNG bytes (matplotlib Agg): confusion, PR curves, reliability."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from oiforge.evaluate.metrics import Labels, Probs

MAX_LABELLED_CLASSES = 40


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    _pyplot().close(fig)
    return buf.getvalue()


def confusion_png(matrix: Sequence[Sequence[int]], names: Sequence[str]) -> bytes:
    """Counts (left) and row-normalised recall (right)."""
    plt = _pyplot()
    counts = np.asarray(matrix, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    n = len(names)
    side = min(18.0, 3.0 + 0.35 * n)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side, side))
    for ax, data, title, fmt in (
        (axes[0], counts, "counts", "{:.0f}"),
        (axes[1], norm, "normalised by true class", "{:.2f}"),
    ):
        ax.imshow(data, cmap="Blues", vmin=0)
        ax.set_title(title)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if n <= MAX_LABELLED_CLASSES:
            ax.set_xticks(range(n), names, rotation=90, fontsize=8)
            ax.set_yticks(range(n), names, fontsize=8)
        if n <= 15:
            top = data.max() or 1.0
            for (i, j), v in np.ndenumerate(data):
                colour = "white" if v > top / 2 else "black"
                ax.text(j, i, fmt.format(v), ha="center", va="center", color=colour, fontsize=8)
    return _png(fig)


def pr_curves_png(probs: Probs, labels: Labels, names: Sequence[str]) -> bytes:
    """One precision-recall curve per class (one-vs-rest), with average precision; for
    multi-label targets ``(N, C)``, over each class's verified labels only."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    for i, name in enumerate(names):
        known = labels[:, i] >= 0 if labels.ndim == 2 else np.ones(len(labels), bool)
        truth = labels[known, i] == 1 if labels.ndim == 2 else labels == i
        if not truth.any():
            continue
        precision, recall, _ = precision_recall_curve(truth, probs[known, i])
        ap = average_precision_score(truth, probs[known, i])
        ax.plot(recall, precision, label=f"{name} (AP {ap:.2f})" if len(names) <= 20 else None)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if len(names) <= 20:
        ax.legend(fontsize=8, loc="lower left")
    return _png(fig)


def reliability_png(bins: Sequence[dict[str, float]], ece: float) -> bytes:
    """Accuracy vs confidence per bin, against the diagonal of perfect calibration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    if bins:
        centres = [(b["low"] + b["high"]) / 2 for b in bins]
        width = bins[0]["high"] - bins[0]["low"]
        ax.bar(
            centres,
            [b["accuracy"] for b in bins],
            width=width * 0.9,
            alpha=0.7,
            edgecolor="black",
            label="accuracy",
        )
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="C3")
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {ece:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    return _png(fig)
