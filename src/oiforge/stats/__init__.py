"""The stats stage: label-quality statistics of a version and split, from the catalog.

Public API (Arrow tables; ``.to_pandas()`` for DataFrames)::

    from oiforge.stats import compute_stats, write_stats

    stats = compute_stats("v7", split="train")   # one pass over the machine labels
    stats.frequency        # images per label (human-verified), split and all splits
    stats.confirmation     # per label: machine labels, verified, share confirmed (95% CI)
    stats.by_confidence    # share confirmed per machine-confidence bin
    stats.by_frequency     # share confirmed per label-frequency bin
    stats.precision        # per label x threshold: precision of machine labels kept
    stats.recommend(["/m/01yrx"], target=0.9)   # evidence for select --min-confidence
    write_stats(stats, "stats/")                 # CSVs, stats.json, PNG charts

One-table shortcuts: ``label_frequency``, ``machine_label_confirmation``,
``confirmation_by_confidence``, ``confirmation_by_frequency``, ``machine_label_precision``.
"""

from oiforge.stats.binning import DEFAULT_THRESHOLDS
from oiforge.stats.compute import (
    LabelStats,
    Recommendation,
    compute_stats,
    confirmation_by_confidence,
    confirmation_by_frequency,
    label_frequency,
    machine_label_confirmation,
    machine_label_precision,
)
from oiforge.stats.write import StatsFiles, write_stats

__all__ = [
    "DEFAULT_THRESHOLDS",
    "LabelStats",
    "Recommendation",
    "StatsFiles",
    "compute_stats",
    "confirmation_by_confidence",
    "confirmation_by_frequency",
    "label_frequency",
    "machine_label_confirmation",
    "machine_label_precision",
    "write_stats",
]
