"""``oiforge export RUN_DIR``: a trained run → ``model.onnx`` + ``labels.json`` + ``MODEL.md``
(the model card).

The only serve module that imports torch. The ONNX graph has a dynamic batch axis; after
writing it, the export runs the same random inputs through torch and ONNX Runtime and records
the largest absolute logit difference (the parity the tests hold to 1e-4). A multi-label
model's graph ends in a sigmoid per class: its output ``probabilities`` is what serve
compares with each class's threshold from labels.json.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from oiforge.atomic import fsync_dir, write_text_atomic
from oiforge.contracts.dataset import ClassInfo
from oiforge.contracts.run import (
    CONFIG_FILE,
    LABELS_FILE,
    Labels,
    ModelInfo,
    Preprocessing,
    read_run_config,
    write_labels,
)
from oiforge.errors import StageError
from oiforge.serve.predictor import MODEL_FILE, Predictor, file_sha256

if TYPE_CHECKING:
    import torch


log = logging.getLogger(__name__)

OPSET: Final = 17
INPUT_NAME: Final = "input"
OUTPUT_NAME: Final = "logits"
#: The output of a multi-label graph (a probability per class, sigmoid inside the graph).
PROBABILITIES_NAME: Final = "probabilities"
PARITY_TOLERANCE: Final = 1e-4


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    onnx_path: Path
    labels: Labels
    max_abs_diff: float


def _write_onnx(model: torch.nn.Module, size: int, target: Path, output: str) -> None:
    """Export to a temp file beside ``target``, then rename it into place (atomic)."""

    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _export_to(model, size, tmp, output)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)


def _export_to(model: torch.nn.Module, size: int, path: Path, output: str) -> None:
    import torch

    dummy = torch.zeros(1, 3, size, size)
    # The TorchScript exporter is chosen on purpose (FACTS.md: exact parity for our models);
    # its own deprecation notices are noise for our users.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[output],
            dynamic_axes={INPUT_NAME: {0: "batch"}, output: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def check_parity(model: torch.nn.Module, onnx_dir: Path, size: int, batch: int = 3) -> float:
    """Largest |torch − ONNX Runtime| logit difference on the same random batch."""
    import torch

    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, size, size, generator=gen)
    with torch.no_grad():
        expected = model(inputs).numpy()
    got = Predictor(onnx_dir).logits(inputs.numpy())
    return float(np.max(np.abs(expected - got)))


def export_model(
    model: torch.nn.Module, labels: Labels, out_dir: Path, facts: RunFacts | None = None
) -> ExportResult:
    """Write ``model.onnx``, ``labels.json`` and ``MODEL.md`` for an eval-mode torch model
    (multi-label: ``model`` outputs probabilities, as ``train.models.with_tta`` makes it)."""
    model = model.eval()
    size = labels.preprocessing.size
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / MODEL_FILE
    _write_onnx(model, size, onnx_path, PROBABILITIES_NAME if labels.multilabel else OUTPUT_NAME)
    version = file_sha256(onnx_path)[:12]
    labels = replace(labels, model=replace(labels.model_info, version=version))
    write_labels(out_dir / LABELS_FILE, labels)
    diff = check_parity(model, out_dir, size)
    if diff > PARITY_TOLERANCE:
        log.warning("ONNX parity: max |diff| %.2e exceeds %.0e", diff, PARITY_TOLERANCE)
    facts = facts or RunFacts()
    write_text_atomic(out_dir / "MODEL.md", render_card(labels, facts, diff))
    return ExportResult(out_dir, onnx_path, labels, diff)


def _labels_from_trained(trained: Any, run_dir: Path) -> Labels:
    from oiforge.contracts.run import parse_preprocessing

    pre = trained.preprocessing
    if not isinstance(pre, Preprocessing):
        pre = parse_preprocessing(str(run_dir / LABELS_FILE), dict(pre))
    mids = list(trained.mids) if trained.mids is not None else [""] * len(trained.classes)
    classes = tuple(
        ClassInfo(i, str(name), mid=str(mid))
        for i, (name, mid) in enumerate(zip(trained.classes, mids, strict=True))
    )
    config = trained.config if isinstance(trained.config, dict) else {}
    arch = str(config.get("model") or config.get("architecture") or "unknown")
    name = model_name(run_dir, config, list(trained.classes))
    task = trained.task
    thresholds = trained.thresholds if task == "multilabel" else None
    return Labels(classes, pre, ModelInfo(name=name, architecture=arch), task, thresholds)


#: folder names that say nothing about a model (the CLI's defaults)
GENERIC_NAMES: Final = frozenset({"", ".", "dataset", "data", "run", "runs", "out", "export"})


def model_name(run_dir: Path, config: dict[str, Any], classes: Sequence[str] = ()) -> str:
    """The model's name, from what was trained: the ``name`` in the dataset's ``oiforge.lock``
    (the spec's), else the dataset's or the run's folder unless generic ("dataset", "run"),
    else its classes ("Cat, Dog and Bird classifier")."""
    dataset = config.get("dataset")
    folders = [run_dir.resolve().name]
    if isinstance(dataset, str) and dataset:
        for root in (Path(dataset), run_dir / dataset):
            name = _lock_name(root / "oiforge.lock")
            if name:
                return name
        folders.insert(0, Path(dataset).resolve().name)
    named = [f for f in folders if f.lower() not in GENERIC_NAMES]
    if named:
        return named[0]
    shown = [str(c) for c in classes[:3]]
    if len(classes) > 3:
        return f"{', '.join(shown)} +{len(classes) - 3} classifier"
    if len(shown) > 1:
        return f"{', '.join(shown[:-1])} and {shown[-1]} classifier"
    return f"{shown[0]} classifier" if shown else "classifier"


def _lock_name(path: Path) -> str:
    import json

    try:
        name = json.loads(path.read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        return ""
    return name if isinstance(name, str) and name.lower() not in GENERIC_NAMES else ""


def export_run(run_dir: Path, out_dir: Path | None = None, tta: str = "none") -> ExportResult:
    """Export a training run dir (loaded with ``oiforge.train.load_trained``). ``tta``
    (``flip``, ``multi-crop``) puts test-time augmentation inside the graph: the views and
    their average are computed by ONNX Runtime, so ``serve`` and ``predict`` get it as is."""
    if not (run_dir / CONFIG_FILE).is_file():
        raise StageError(f"{run_dir} is not a training run (no config.yaml); train first")
    try:
        from oiforge.train import load_trained  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:
        raise StageError(f"the train stage is not installed: {exc}") from exc
    from oiforge.train.models import with_tta

    trained = load_trained(run_dir)
    labels = _labels_from_trained(trained, run_dir)
    labels = replace(labels, model=replace(labels.model_info, tta=tta))
    model = with_tta(trained.model, tta, labels.preprocessing.size, labels.multilabel)
    return export_model(model, labels, out_dir or run_dir, run_facts(run_dir))


MAX_LISTED_CLASSES = 50


@dataclass(frozen=True)
class RunFacts:
    """What a run dir tells about the model: its config and its best metrics row."""

    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    source: str = "(not recorded)"


def _best_metrics(path: Path) -> dict[str, str]:
    """The metrics.csv row with the best validation accuracy (else the last row)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}
    if not rows:
        return {}
    key = next((k for k in ("val_acc", "val_top1", "val_accuracy") if k in rows[0]), None)

    def score(row: dict[str, str]) -> float:
        try:
            return float(row.get(key or "", "") or "nan")
        except ValueError:
            return float("-inf")

    best = max(rows, key=score) if key else rows[-1]
    return {k: v for k, v in best.items() if k and v not in (None, "")}


def run_facts(run_dir: Path) -> RunFacts:
    return RunFacts(
        config=read_run_config(run_dir),
        metrics=_best_metrics(run_dir / "metrics.csv"),
        source=str(run_dir.resolve()),
    )


def _config_lines(config: dict[str, Any]) -> list[str]:
    lines = [f"- `{k}`: {v}" for k, v in config.items() if not isinstance(v, dict | list)]
    return lines or ["- (no config.yaml in the run dir)"]


def _class_lines(labels: Labels) -> list[str]:
    shown = labels.classes[:MAX_LISTED_CLASSES]
    if labels.multilabel:
        cut = labels.cutoffs
        lines = [f"| {c.index} | {c.name} | `{c.mid}` | {cut[c.index]:.3f} |" for c in shown]
        head = ["| index | name | MID | threshold |", "|---|---|---|---|"]
    else:
        lines = [f"| {c.index} | {c.name} | `{c.mid}` |" for c in shown]
        head = ["| index | name | MID |", "|---|---|---|"]
    if len(labels.classes) > len(shown):
        lines.append(f"| … | {len(labels.classes) - len(shown)} more in labels.json | |")
    return [*head, *lines]


def _file_lines(labels: Labels, parity: float) -> list[str]:
    pre, n, tta = labels.preprocessing, len(labels.classes), labels.model_info.tta
    if labels.multilabel:
        output = f"output `probabilities` (N, {n}), a sigmoid per class"
        listed = "classes (index, name, Open Images MID), preprocessing, task and thresholds"
        views = " (output: the views' mean probabilities)." if tta != "none" else "."
    else:
        output = f"output `logits` (N, {n})"
        listed = "classes (index, name, Open Images MID) and preprocessing"
        views = " (output: log of the views' mean probabilities)." if tta != "none" else "."
    return [
        f"- `model.onnx`: input `input` float32 (N, 3, {pre.size}, {pre.size}), {output}; "
        "dynamic N.",
        f"- `labels.json`: {listed}.",
        f"- ONNX Runtime vs torch parity on random inputs: max |logit diff| = {parity:.2e}.",
        f"- Test-time augmentation inside the graph: {tta}{views}",
    ]


def render_card(labels: Labels, facts: RunFacts, parity: float) -> str:
    pre = labels.preprocessing
    metrics = [f"- {k}: {v}" for k, v in facts.metrics.items()] or ["- (no metrics.csv)"]
    today = dt.datetime.now(dt.UTC).date().isoformat()
    parts = [
        f"# Model card: {labels.model_info.name}",
        "",
        f"Version `{labels.model_info.version}` (first 12 hex of the SHA-256 of model.onnx), "
        f"architecture `{labels.model_info.architecture}`, exported {today} from `{facts.source}`.",
        "",
        "## Files",
        *_file_lines(labels, parity),
        "",
        "## Preprocessing",
        f"RGB (EXIF orientation applied), shorter side resized to {pre.scale_size} (bilinear), "
        f"centre crop {pre.size}×{pre.size}, scaled to 0..1, normalised with mean "
        f"{list(pre.mean)} and std {list(pre.std)}.",
        "",
        "## Training data and configuration",
        "Images from Google's Open Images dataset, selected and split by oiforge "
        "(see the dataset's DATASET.md and oiforge.lock for the exact samples).",
        *_config_lines(facts.config),
        "",
        "## Metrics (best validation epoch)",
        *metrics,
        "",
        f"## Classes ({len(labels.classes)})",
        *_class_lines(labels),
        "",
        *(_MULTILABEL_USE if labels.multilabel else _SINGLE_LABEL_USE),
        *_LIMITS,
    ]
    return "\n".join(parts) + "\n"


_SINGLE_LABEL_USE = [
    "## Intended use",
    "Single-label classification of everyday photos into the classes above, for prototypes, "
    "search and sorting, and teaching. Every prediction is a guess with a probability; "
    "show the top-k, not only the top-1.",
    "",
    "## Limits",
    "- It only knows the classes above; any other photo still gets one of them.",
]
_MULTILABEL_USE = [
    "## Intended use",
    "Multi-label tagging of everyday photos: every class above whose probability reaches its "
    "threshold (chosen on the validation split) is reported, so a photo may get several "
    "labels or none. It learnt only from labels a person verified; labels nobody checked "
    "were left out of training, not taken as absent.",
    "",
    "## Limits",
    "- It only knows the classes above; a photo of something else may still get one of them.",
]
_LIMITS = [
    "- Open Images labels are partly machine-generated and verified by people; some are "
    "wrong or missing, and Flickr photos over-represent some places, people and objects.",
    "- Not for decisions about people (identity, health, employment, law enforcement).",
    "- Accuracy was measured on a held-out split of the same data; expect less on "
    "photos unlike Flickr's.",
    "",
    "## Licences",
    "- Open Images annotations: CC BY 4.0 (Google LLC). The images are Flickr photos under "
    "CC BY 2.0 and others; attribution per image is in the dataset's attribution.json.",
    "- Pretrained backbone weights (if used) keep their own licence (EfficientNet-Lite: "
    "Apache-2.0). oiforge itself: Apache-2.0.",
]
