"""The evaluate stage: a trained run on its held-out split -> metrics.json, plots, report.html.

Public API::

    from oiforge.evaluate import evaluate, run_evaluation, compute_metrics
    summary = evaluate("runs/cats")                 # test split of the run's dataset
"""

from __future__ import annotations

from oiforge.evaluate.metrics import compute_metrics, summary_meaning
from oiforge.evaluate.run import evaluate, run_evaluation

__all__ = ["compute_metrics", "evaluate", "run_evaluation", "summary_meaning"]
