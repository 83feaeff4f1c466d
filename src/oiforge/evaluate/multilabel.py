"""Multi-label metrics the Open Images way, from probabilities and verified labels.

Targets are ``(N, C)``: 1 a person verified the class is in the photo, 0 verified it is not,
-1 nobody checked (unknown). Every number here is computed over verified labels only: a
prediction on an unknown label is neither right nor wrong, so an unverified label never
counts as a false positive (nor a false negative).

- **AP** per class: the photos whose label for the class was verified, ranked by the model's
  probability; the precision at each step of recall, averaged (tied scores one step).
  **mAP**: the mean over the classes with at least one verified positive in the split, with
  a 95% bootstrap interval (the test photos resampled :data:`BOOTSTRAP` times, seeded).
- **Thresholds** per class, chosen on the validation split (best F1, or the lowest threshold
  reaching ``--target-precision``), then precision, recall and F1 at them on the test split,
  per class, micro (all verified labels pooled) and macro (the mean over the classes with a
  verified positive).

Hierarchy: the labels are taken as the dataset holds them. A dataset built with
``--expand-up`` already lists each positive's ancestors among its classes (a verified
"Hamburger" is also a "Fast food"), as the official metric expands them; evaluation does not
expand a dataset that was not (it has no class hierarchy, and guessing would invent labels).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from oiforge.evaluate.gallery import Mistake, attribution_for, load_attribution, thumbnail_b64
from oiforge.train.dataset import Sample, source_of
from oiforge.train.heads import choose_thresholds, mean_average_precision, per_class_ap

Array = npt.NDArray[Any]
#: Resamples of the test photos behind mAP's confidence interval.
BOOTSTRAP = 1000


def _safe(a: float, b: float) -> float:
    return a / b if b else 0.0


def _prf(tp: float, fp: float, fn: float) -> dict[str, float]:
    precision, recall = _safe(tp, tp + fp), _safe(tp, tp + fn)
    f1 = _safe(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1}


def map_interval(
    probs: Array, targets: Array, resamples: int = BOOTSTRAP, seed: int = 0
) -> list[float] | None:
    """mAP's 95% percentile bootstrap interval over the photos (None with < 2 photos)."""
    n = len(targets)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    values = [mean_average_precision(probs[rows], targets[rows])
              for rows in rng.integers(0, n, (resamples, n))]  # fmt: skip
    finite = np.asarray([v for v in values if not np.isnan(v)])
    if not len(finite):
        return None
    return [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))]


def counts_at(probs: Array, targets: Array, thresholds: Sequence[float]) -> dict[str, Array]:
    """Per class: true positives, false positives, false negatives at ``thresholds`` over
    the verified labels, and the verified positives and negatives."""
    said = probs >= np.asarray(thresholds, dtype=np.float64)[None, :]
    pos, neg = targets == 1, targets == 0
    return {
        "tp": (said & pos).sum(0),
        "fp": (said & neg).sum(0),
        "fn": (~said & pos).sum(0),
        "positives": pos.sum(0),
        "negatives": neg.sum(0),
    }


def unique_names(names: Sequence[str], mids: Sequence[str]) -> list[str]:
    """The class names as keys: a name twice gets its MID in brackets."""
    seen = {n: names.count(n) for n in names}
    pairs = enumerate(zip(names, mids, strict=True))
    return [n if seen[n] == 1 else f"{n} ({m or i})" for i, (n, m) in pairs]


def multilabel_metrics(
    val: tuple[Array, Array],
    test: tuple[Array, Array],
    names: Sequence[str],
    target_precision: float | None = None,
) -> dict[str, Any]:
    """``metrics.json``'s multi-label part: mAP, per class AP and the numbers at the
    thresholds chosen on ``val`` (probabilities, targets), micro and macro averages."""
    thresholds, rules = choose_thresholds(*val, target_precision)
    probs, targets = test
    aps = per_class_ap(probs, targets)
    n = counts_at(probs, targets, thresholds)
    rows = {}
    for c, name in enumerate(names):
        at = _prf(float(n["tp"][c]), float(n["fp"][c]), float(n["fn"][c]))
        rows[name] = {
            "index": c,
            "ap": None if np.isnan(aps[c]) else float(aps[c]),
            "support": int(n["positives"][c]),
            "negatives": int(n["negatives"][c]),
            "threshold": thresholds[c],
            "threshold_rule": rules[c],
            **at,
        }
    scored = [c for c in range(len(names)) if n["positives"][c] > 0]
    macro = {
        k: float(np.mean([rows[names[c]][k] for c in scored])) if scored else float("nan")
        for k in ("precision", "recall", "f1")
    }
    return {
        "task": "multilabel",
        "samples": len(targets),
        "map": float(np.nanmean(aps)) if scored else float("nan"),
        "map_ci95": map_interval(probs, targets),
        "map_classes": len(scored),
        "per_class": rows,
        "thresholds": {name: thresholds[c] for c, name in enumerate(names)},
        "threshold_rule": (
            "best F1 on val"
            if target_precision is None
            else f"precision >= {target_precision:g} on val"
        ),
        "micro": _prf(float(n["tp"].sum()), float(n["fp"].sum()), float(n["fn"].sum())),
        "macro": macro,
        "verified_labels": int((targets >= 0).sum()),
        "unknown_labels": int((targets < 0).sum()),
    }


def worst_labels(
    probs: Array,
    targets: Array,
    samples: Sequence[Sample],
    names: Sequence[str],
    manifest: Any,
    limit: int,
) -> tuple[list[Mistake], list[Mistake]]:
    """The most confident false positives (verified absent, high probability) and false
    negatives (verified present, low probability); unknown labels are never either."""
    index = load_attribution(manifest)
    fp = np.argwhere(targets == 0)
    fn = np.argwhere(targets == 1)
    fp = fp[np.argsort(-probs[fp[:, 0], fp[:, 1]], kind="stable")][:limit]
    fn = fn[np.argsort(probs[fn[:, 0], fn[:, 1]], kind="stable")][:limit]

    def mistake(row: int, c: int, kind: str) -> Mistake:
        sample = samples[row]
        said, truth = (names[c], f"not {names[c]}")
        if kind == "false negative":
            said, truth = truth, said
        return Mistake(
            sample.key, truth, said, float(probs[row, c]), thumbnail_b64(sample),
            attribution_for(sample, index), kind,
        )  # fmt: skip

    return (
        [mistake(int(r), int(c), "false positive") for r, c in fp],
        [mistake(int(r), int(c), "false negative") for r, c in fn],
    )


def predictions_csv(samples: Sequence[Sample], probs: Array, names: Sequence[str]) -> str:
    """One row per sample: its key, its ImageID, then one probability per class."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["key", "image_id", *names])
    for sample, row in zip(samples, probs, strict=True):
        writer.writerow([sample.key, source_of(sample), *(f"{p:.6f}" for p in row)])
    return buf.getvalue()
