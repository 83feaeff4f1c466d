"""``run_evaluation``: a trained run + a held-out split -> metrics.json, plots, report.html.

The split is ``test`` (kept apart by source image when the dataset was built). Without a
test split the ``val`` split is used, with a notice that it also chose the best epoch.
Training images are never evaluated on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from oiforge.atomic import write_bytes_atomic, write_text_atomic
from oiforge.errors import InvalidInputError
from oiforge.evaluate.gallery import as_dict, build_gallery
from oiforge.evaluate.metrics import compute_metrics
from oiforge.evaluate.plots import confusion_png, pr_curves_png, reliability_png
from oiforge.evaluate.report import render_report
from oiforge.progress import Event, Finished, Notice, PhaseStart, Step
from oiforge.train.dataset import DatasetIndex, Sample, open_dataset
from oiforge.train.images import (
    ImageDataset,
    collate,
    describe_survey,
    eval_transform,
    resize_size,
    survey_inputs,
)
from oiforge.train.models import with_tta
from oiforge.train.rundir import CURVES_FILE, SUMMARY_FILE, TrainedModel, load_trained

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
PREDICTIONS_FILE = "predictions.csv"


@dataclass(frozen=True)
class Predictions:
    probs: np.ndarray[Any, np.dtype[np.float32]]
    labels: np.ndarray[Any, np.dtype[np.int64]]
    samples: list[Sample]
    bad: int


def _label_map(index: DatasetIndex, classes: Sequence[str]) -> dict[int, int]:
    """Dataset class index -> model output index, by name or folder (case-insensitive)."""
    wanted = {name.casefold(): i for i, name in enumerate(classes)}
    mapping = {}
    for c in index.classes:
        hit = wanted.get(c.name.casefold(), wanted.get(c.folder.casefold()))
        if hit is not None:
            mapping[c.index] = hit
    if not mapping:
        raise InvalidInputError(
            f"no class of {index.root} is one the model knows ({', '.join(classes)})"
        )
    return mapping


def choose_split(index: DatasetIndex) -> tuple[str, list[Notice]]:
    if index.splits.get("test"):
        return "test", []
    note = Notice("warning", "no test split: evaluating on val, which also chose the best epoch")
    return "val", [note]


def predict(
    trained: TrainedModel,
    samples: Sequence[Sample],
    batch_size: int,
    workers: int,
    tta: str = "none",
) -> Generator[Event, None, Predictions]:
    """Class probabilities for every decodable sample (in order); yields progress. ``tta``:
    the probabilities averaged over flips or crops (``models.TestTimeAugmented``)."""
    prep = trained.preprocessing
    model = with_tta(trained.model, tta, int(prep["size"]))
    size = resize_size(int(prep["size"]), float(prep["crop_pct"]))
    loader = DataLoader(
        ImageDataset(samples, eval_transform(prep), size),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate,
    )
    device = next(trained.model.parameters()).device
    probs, labels, rows, bad = [], [], [], 0
    yield PhaseStart("evaluate", len(loader))
    with torch.no_grad():
        for step, (x, y, idx, bad_rows) in enumerate(loader):
            bad += len(bad_rows)
            if len(y):
                probs.append(model(x.to(device)).float().softmax(1).cpu().numpy())
                labels.append(y.numpy())
                rows += idx.tolist()
            yield Step("evaluate", step + 1)
    if not probs:
        raise InvalidInputError("no decodable images to evaluate on")
    return Predictions(
        np.concatenate(probs), np.concatenate(labels), [samples[i] for i in rows], bad
    )


def run_evaluation(
    run_dir: str | Path,
    dataset: str | Path | None = None,
    *,
    batch_size: int = 64,
    workers: int = 2,
    worst: int = 12,
    tta: str = "none",
) -> Iterator[Event]:
    """Evaluate a run on its dataset's held-out split; writes metrics.json and report.html.
    ``tta``: none, flip or multi-crop (test-time augmentation, recorded in metrics.json)."""
    with_tta(torch.nn.Identity(), tta, 1)  # an unknown kind fails before any work
    trained = load_trained(run_dir, device="cuda" if torch.cuda.is_available() else "cpu")
    cfg = trained.config
    index = open_dataset(dataset or cfg["dataset"], cfg["val_fraction"], cfg["seed"])
    split, notices = choose_split(index)
    yield from notices
    mapping = _label_map(index, trained.classes)
    samples = [
        Sample(s.path, mapping[s.label], s.key, s.offset, s.size)
        for s in index.splits[split]
        if s.label in mapping
    ]
    if len(samples) < len(index.splits[split]):
        yield Notice(
            "warning",
            f"{len(index.splits[split]) - len(samples)} images of unknown classes: skipped",
        )
    line = describe_survey(survey_inputs(samples), len(samples))
    if line:
        yield Notice("info", f"inputs: {line}")
    preds = yield from predict(trained, samples, batch_size, workers, tta)
    if preds.bad:
        yield Notice("warning", f"{preds.bad} {split} images could not be decoded: skipped")
    summary = write_outputs(Path(run_dir), trained, index, split, preds, worst, tta)
    yield Finished(str(run_dir), summary)


def write_outputs(
    run: Path,
    trained: TrainedModel,
    index: DatasetIndex,
    split: str,
    preds: Predictions,
    worst: int,
    tta: str = "none",
) -> dict[str, Any]:
    names = trained.classes
    metrics = compute_metrics(preds.probs, preds.labels, names)
    mistakes = build_gallery(preds.probs, preds.labels, preds.samples, names, index.manifest, worst)
    metrics.update(
        {
            "split": split,
            "dataset": str(index.root),
            "undecodable": preds.bad,
            "tta": tta,
            "worst_mistakes": [as_dict(m) for m in mistakes],
        }
    )
    plots = write_plots(run, metrics, preds, names)
    write_text_atomic(run / METRICS_FILE, json.dumps(metrics, indent=2, allow_nan=True) + "\n")
    write_text_atomic(run / PREDICTIONS_FILE, _predictions_csv(preds, names))
    facts = {
        "run": str(run),
        "model": trained.config["model"],
        "mode": trained.config["mode"],
        "dataset": str(index.root),
        "split": split,
        "images": len(preds.labels),
        "test-time augmentation": tta,
    }
    if trained.config.get("chosen"):
        facts["auto's pick"] = trained.config["chosen"]
    candidates = _candidates(run)
    html = render_report(
        f"oiforge evaluation: {run.name}", facts, metrics, plots, mistakes, candidates
    )
    write_text_atomic(run / REPORT_FILE, html)
    return {
        "split": split,
        "samples": metrics["samples"],
        "correct": round(metrics["accuracy"] * metrics["samples"]),
        "accuracy": metrics["accuracy"],
        "top_k": metrics["top_k"],
        "macro_f1": metrics["macro"]["f1"],
        "ece": metrics["ece"],
    }


def _candidates(run: Path) -> list[dict[str, Any]]:
    """``--mode auto``'s candidates table from the run's summary.json ([] for other modes)."""
    try:
        summary = json.loads((run / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    rows = summary.get("candidates") if isinstance(summary, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def write_plots(
    run: Path, metrics: dict[str, Any], preds: Predictions, names: Sequence[str]
) -> dict[str, bytes]:
    """Write the PNGs; return them by title (training curves included) for the report."""
    plots = {
        "Confusion matrix": confusion_png(metrics["confusion"], names),
        "Precision-recall curves": pr_curves_png(preds.probs, preds.labels, names),
        "Calibration": reliability_png(metrics["calibration_bins"], metrics["ece"]),
    }
    files = ("confusion.png", "pr_curves.png", "reliability.png")
    for file, png in zip(files, plots.values(), strict=True):
        write_bytes_atomic(run / file, png)
    if (run / CURVES_FILE).is_file():
        plots["Training curves"] = (run / CURVES_FILE).read_bytes()
    return plots


def _predictions_csv(preds: Predictions, names: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["key", "true", "predicted", "confidence"])
    for sample, label, p in zip(preds.samples, preds.labels, preds.probs, strict=True):
        top = int(p.argmax())
        writer.writerow([sample.key, names[int(label)], names[top], f"{p[top]:.6f}"])
    return buf.getvalue()


def evaluate(run_dir: str | Path, dataset: str | Path | None = None, **kw: Any) -> dict[str, Any]:
    """Run the evaluation to the end; returns its summary."""
    summary: dict[str, Any] = {}
    for event in run_evaluation(run_dir, dataset, **kw):
        if isinstance(event, Finished):
            summary = event.summary
    return summary
