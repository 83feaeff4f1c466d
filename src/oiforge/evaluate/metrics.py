"""Classification metrics from predicted probabilities and true labels (NumPy only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Probs = npt.NDArray[np.floating[Any]]
Labels = npt.NDArray[np.integer[Any]]


def confusion_matrix(labels: Labels, preds: Labels, num_classes: int) -> npt.NDArray[np.int64]:
    """``m[true, predicted]`` counts."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (labels, preds), 1)
    return m


def top_k_accuracy(probs: Probs, labels: Labels, k: int) -> float:
    """Share of samples whose true class is among the ``k`` highest scores."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def _safe_div(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = np.zeros(a.shape, dtype=np.float64)
    np.divide(a, b, out=out, where=b > 0)
    return out


def per_class(matrix: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[Any]]:
    """Precision, recall, F1 and support per class (0 where undefined)."""
    tp = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support.astype(np.float64))
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def calibration(
    probs: Probs, labels: Labels, bins: int = 15
) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error of the top-1 confidence, and the per-bin table."""
    if len(labels) == 0:
        return float("nan"), []
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece, table = 0.0, []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        if not n:
            continue
        acc, mean_conf = float(correct[mask].mean()), float(conf[mask].mean())
        ece += abs(acc - mean_conf) * n / len(labels)
        table.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": n,
                "accuracy": acc,
                "confidence": mean_conf,
            }
        )
    return ece, table


def compute_metrics(
    probs: Probs, labels: Labels, class_names: Sequence[str], top_k: Sequence[int] = (1, 5)
) -> dict[str, Any]:
    """Everything ``metrics.json`` holds, as plain JSON-ready values."""
    num_classes = len(class_names)
    preds = probs.argmax(axis=1) if len(labels) else np.zeros(0, dtype=np.int64)
    matrix = confusion_matrix(labels, preds, num_classes)
    pc = per_class(matrix)
    support = pc["support"]
    present = support > 0
    weights = support / support.sum() if support.sum() else np.zeros(num_classes)
    ece, bins = calibration(probs, labels)
    averages = {
        name: {
            m: float(pc[m][present].mean()) if present.any() else float("nan")
            for m in ("precision", "recall", "f1")
        }
        for name in ("macro",)
    }
    averages["weighted"] = {
        m: float((pc[m] * weights).sum()) for m in ("precision", "recall", "f1")
    }
    return {
        "samples": len(labels),
        "accuracy": float((preds == labels).mean()) if len(labels) else float("nan"),
        "top_k": {str(k): top_k_accuracy(probs, labels, k) for k in top_k if k <= num_classes},
        "per_class": [
            {
                "index": i,
                "name": class_names[i],
                "precision": float(pc["precision"][i]),
                "recall": float(pc["recall"][i]),
                "f1": float(pc["f1"][i]),
                "support": int(support[i]),
            }
            for i in range(num_classes)
        ],
        "macro": averages["macro"],
        "weighted": averages["weighted"],
        "confusion": matrix.tolist(),
        "ece": ece,
        "calibration_bins": bins,
    }


def summary_meaning(summary: dict[str, Any]) -> str:
    """What the accuracy says, in photos, with a 95% Wilson interval (small test sets are
    honest about how little they can tell)."""
    n, right = int(summary.get("samples") or 0), int(summary.get("correct") or 0)
    if not n:
        return ""
    if "map" in summary:
        ci = summary.get("map_ci95")
        interval = f" (95% bootstrap CI {ci[0]:.2f}-{ci[1]:.2f})" if ci else ""
        return (
            f"mAP {float(summary['map']):.3f}{interval}: the mean, over {summary['map_classes']} "
            f"classes with a verified positive, of their average precision on {n} held-out "
            f"{summary.get('split')} photos (verified labels only)"
        )
    z = 1.96
    p = right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return (
        f"accuracy {p:.3f} = {right} of {n} held-out {summary.get('split')} photos right; "
        f"95% CI {max(0.0, centre - half):.2f}-{min(1.0, centre + half):.2f}"
    )
