"""``run_evaluation``: a trained run + a held-out split -> metrics.json, plots, report.html.

The split is ``test`` (kept apart by source image when the dataset was built). Without a
test split the ``val`` split is used, with a notice that it also chose the best epoch.
Training images are never evaluated on. A multi-label run is evaluated the Open Images way
(``multilabel.py``): its thresholds are chosen on ``val`` and recorded in its labels.json.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from oiforge.atomic import write_bytes_atomic, write_text_atomic
from oiforge.errors import InvalidInputError
from oiforge.evaluate.gallery import as_dict, build_gallery
from oiforge.evaluate.metrics import compute_metrics
from oiforge.evaluate.multilabel import (
    multilabel_metrics,
    predictions_csv,
    unique_names,
    worst_labels,
)
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
from oiforge.train.rundir import (
    CURVES_FILE,
    SUMMARY_FILE,
    TrainedModel,
    load_trained,
    set_thresholds,
)

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
PREDICTIONS_FILE = "predictions.csv"


@dataclass(frozen=True)
class Predictions:
    """Probabilities and labels (multi-label: ``(N, C)`` targets) of the decodable samples."""

    probs: np.ndarray[Any, np.dtype[np.float32]]
    labels: np.ndarray[Any, Any]
    samples: list[Sample]
    bad: int


@dataclass(frozen=True)
class Options:
    batch_size: int = 64
    workers: int = 2
    worst: int = 12
    tta: str = "none"
    target_precision: float | None = None


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
    phase: str = "evaluate",
) -> Generator[Event, None, Predictions]:
    """Class probabilities for every decodable sample (in order); yields progress. ``tta``:
    the probabilities averaged over flips or crops (``models.TestTimeAugmented``; multi-label:
    a sigmoid per class, ``models.LabelProbabilities``)."""
    prep = trained.preprocessing
    model = with_tta(trained.model, tta, int(prep["size"]), trained.multilabel)
    size = resize_size(int(prep["size"]), float(prep["crop_pct"]))
    loader = DataLoader(
        ImageDataset(samples, eval_transform(prep), size),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate,
    )
    device = next(trained.model.parameters()).device
    probs, labels, rows, bad = [], [], [], 0
    yield PhaseStart(phase, len(loader))
    with torch.no_grad():
        for step, (x, y, idx, bad_rows) in enumerate(loader):
            bad += len(bad_rows)
            if len(y):
                out = model(x.to(device)).float()
                probs.append((out if trained.multilabel else out.softmax(1)).cpu().numpy())
                labels.append(y.numpy())
                rows += idx.tolist()
            yield Step(phase, step + 1)
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
    target_precision: float | None = None,
) -> Iterator[Event]:
    """Evaluate a run on its dataset's held-out split; writes metrics.json and report.html.
    ``tta``: none, flip or multi-crop (test-time augmentation, recorded in metrics.json).
    ``target_precision`` (multi-label): each class's threshold is the lowest whose validation
    precision reaches it (default: the best validation F1)."""
    with_tta(torch.nn.Identity(), tta, 1)  # an unknown kind fails before any work
    trained = load_trained(run_dir, device="cuda" if torch.cuda.is_available() else "cpu")
    cfg = trained.config
    index = open_dataset(dataset or cfg["dataset"], cfg["val_fraction"], cfg["seed"])
    check_task(Path(run_dir), trained, index, target_precision)
    split, notices = choose_split(index)
    yield from notices
    mapping = _label_map(index, trained.classes)
    if trained.multilabel:
        opts = Options(batch_size, workers, worst, tta, target_precision)
        summary = yield from _run_multilabel(Path(run_dir), trained, index, split, mapping, opts)
        yield Finished(str(run_dir), summary)
        return
    samples = [
        replace(s, label=mapping[s.label]) for s in index.splits[split] if s.label in mapping
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


def check_task(
    run: Path, trained: TrainedModel, index: DatasetIndex, target_precision: float | None
) -> None:
    """A run and a dataset of different tasks (single- vs multi-label) are refused, naming
    both; so is ``--target-precision`` for a single-label run."""
    if trained.task != index.task:
        raise InvalidInputError(
            f"{run} is a {trained.task} model but {index.root} is a {index.task} dataset: "
            "evaluate a run on a dataset of its own task"
        )
    if target_precision is not None and not trained.multilabel:
        raise InvalidInputError(
            f"--target-precision chooses multi-label thresholds; {run} is a single-label model"
        )
    if target_precision is not None and not 0.0 < target_precision <= 1.0:
        raise InvalidInputError(f"--target-precision must be in (0, 1]: {target_precision:g}")


def _remapped(samples: Sequence[Sample], mapping: dict[int, int], width: int) -> list[Sample]:
    """Multi-label samples with their class indexes turned into the model's; a class the
    model does not know is dropped, one the dataset does not have stays unknown."""

    def moved(indexes: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(mapping[i] for i in indexes if i in mapping))

    return [
        replace(s, positives=moved(s.positives), negatives=moved(s.negatives), num_classes=width)
        for s in samples
    ]


def _run_multilabel(
    run: Path,
    trained: TrainedModel,
    index: DatasetIndex,
    split: str,
    mapping: dict[int, int],
    opts: Options,
) -> Generator[Event, None, dict[str, Any]]:
    """Thresholds on val, everything else on ``split``; writes the run's files."""
    width = len(trained.classes)
    val_samples = _remapped(index.splits["val"], mapping, width)
    test_samples = _remapped(index.splits[split], mapping, width)
    args = (opts.batch_size, opts.workers, opts.tta)
    val = yield from predict(trained, val_samples, *args, phase="val (thresholds)")
    if split == "val":
        test = val
    else:
        test = yield from predict(trained, test_samples, *args, phase=f"evaluate {split}")
    if test.bad:
        yield Notice("warning", f"{test.bad} {split} images could not be decoded: skipped")
    names = unique_names(trained.classes, trained.mids)
    metrics = multilabel_metrics(
        (val.probs, val.labels), (test.probs, test.labels), names, opts.target_precision
    )
    set_thresholds(run, list(metrics["thresholds"].values()))
    fps, fns = worst_labels(
        test.probs, test.labels, test.samples, names, index.manifest, opts.worst
    )
    metrics.update(
        {
            "split": split, "dataset": str(index.root), "undecodable": test.bad,
            "tta": opts.tta, "expand_up": index.details.get("expand_up"),
            "worst_false_positives": [as_dict(m) for m in fps],
            "worst_false_negatives": [as_dict(m) for m in fns],
        }
    )  # fmt: skip
    plots = {"Precision-recall curves": pr_curves_png(test.probs, test.labels, names)}
    write_bytes_atomic(run / "pr_curves.png", plots["Precision-recall curves"])
    if (run / CURVES_FILE).is_file():
        plots["Training curves"] = (run / CURVES_FILE).read_bytes()
    write_text_atomic(run / METRICS_FILE, json.dumps(metrics, indent=2, allow_nan=True) + "\n")
    write_text_atomic(run / PREDICTIONS_FILE, predictions_csv(test.samples, test.probs, names))
    facts = _facts(run, trained, index, split, len(test.labels), opts.tta)
    html = render_report(
        f"oiforge evaluation: {run.name}", facts, metrics, plots, [*fps, *fns], _candidates(run)
    )
    write_text_atomic(run / REPORT_FILE, html)
    keys = ("task", "split", "samples", "map", "map_ci95", "map_classes")
    return {
        **{k: metrics[k] for k in keys},
        "micro_f1": metrics["micro"]["f1"],
        "macro_f1": metrics["macro"]["f1"],
    }


def _facts(
    run: Path, trained: TrainedModel, index: DatasetIndex, split: str, images: int, tta: str
) -> dict[str, Any]:
    facts = {
        "run": str(run),
        "model": trained.config["model"],
        "mode": trained.config["mode"],
        "dataset": str(index.root),
        "split": split,
        "images": images,
        "test-time augmentation": tta,
    }
    if trained.config.get("chosen"):
        facts["auto's pick"] = trained.config["chosen"]
    return facts


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
    facts = _facts(run, trained, index, split, len(preds.labels), tta)
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
