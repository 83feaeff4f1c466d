"""Several seeds of one config: mean ± std of the numbers that matter."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from oiforge.atomic import write_text_atomic

SEEDS_FILE = "seeds.json"
KEYS = ("best_val_acc", "accuracy", "macro_f1", "ece", "train_seconds")


def summarize_seeds(results: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, float]]:
    """``{metric: (mean, sample std)}`` over the runs that report it."""
    stats: dict[str, tuple[float, float]] = {}
    for key in KEYS:
        values = [float(r[key]) for r in results if isinstance(r.get(key), int | float)]
        if not values:
            continue
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        stats[key] = (mean, math.sqrt(var))
    return stats


def write_seeds_summary(
    out: Path, results: Sequence[Mapping[str, Any]], stats: Mapping[str, tuple[float, float]]
) -> None:
    data = {
        "runs": list(results),
        "mean_std": {k: {"mean": m, "std": s} for k, (m, s) in stats.items()},
    }
    write_text_atomic(out / SEEDS_FILE, json.dumps(data, indent=2, default=str) + "\n")
