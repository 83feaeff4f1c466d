"""The run directory contract (export and serve rely on exactly this).

    RUN/config.yaml          the resolved TrainConfig (model, num_classes, image_size, mode, ...)
    RUN/labels.json          {"classes": [{index, name, mid}], "preprocessing": {...}}
    RUN/best.safetensors     state dict of the FULL model as built by ``create_model``
    RUN/metrics.csv          one row per epoch
    RUN/curves.png           training curves
    RUN/checkpoint.safetensors  the last epoch's full state, for ``--resume``

``load_trained(run_dir)`` rebuilds the model from these files alone (no network, no pickle).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from oiforge.atomic import write_bytes_atomic, write_text_atomic
from oiforge.contracts import run as run_files
from oiforge.contracts.dataset import ClassInfo
from oiforge.contracts.run import CONFIG_FILE as CONFIG_FILE  # train.trainer imports it here
from oiforge.contracts.run import LABELS_FILE, Labels, Preprocessing
from oiforge.errors import MalformedFileError, StageError
from oiforge.train.config import TrainConfig, dump_config, read_config
from oiforge.train.models import create_model

BEST_FILE = "best.safetensors"
METRICS_FILE = "metrics.csv"
CURVES_FILE = "curves.png"
CHECKPOINT_FILE = "checkpoint.safetensors"


@dataclass(frozen=True)
class TrainedModel:
    """A trained classifier: ``model`` (eval mode, NCHW normalised input -> logits) + labels."""

    model: nn.Module
    classes: list[str]
    mids: list[str]
    preprocessing: dict[str, Any]
    config: dict[str, Any]
    run_dir: Path


def write_config(run_dir: Path, config: TrainConfig) -> None:
    write_text_atomic(run_dir / CONFIG_FILE, dump_config(config))


def write_labels(
    run_dir: Path, classes: Sequence[ClassInfo], preprocessing: dict[str, Any]
) -> None:
    """``labels.json`` for the run (no ``model`` block: ``oiforge export`` adds it)."""
    pre = Preprocessing(
        size=int(preprocessing["size"]),
        resize=str(preprocessing["resize"]),
        crop_pct=float(preprocessing["crop_pct"]),
        mean=_triple(preprocessing["mean"]),
        std=_triple(preprocessing["std"]),
        input_range=str(preprocessing["input_range"]),
    )
    run_files.write_labels(run_dir / LABELS_FILE, Labels(tuple(classes), pre))


def _triple(values: Sequence[float]) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c


def state_dict_bytes(model: nn.Module) -> bytes:
    """A safetensors blob of the model's state dict (contiguous, CPU copies)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save(state)


def write_weights(path: Path, model: nn.Module) -> None:
    write_bytes_atomic(path, state_dict_bytes(model))


def write_metrics(run_dir: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rewrite ``metrics.csv`` whole (atomic), one row per epoch."""
    if not rows:
        return
    fields = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(run_dir / METRICS_FILE, buf.getvalue())


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_labels(run_dir: Path) -> Labels:
    path = run_dir / LABELS_FILE
    if not path.is_file():
        raise StageError(f"{run_dir} is not a training run: no {LABELS_FILE}")
    return run_files.read_labels(path)


def build_model(config: TrainConfig, *, pretrained: bool) -> nn.Module:
    """The model a config describes (architecture only unless ``pretrained``)."""
    return create_model(
        config.model,
        config.num_classes,
        pretrained=pretrained,
        head=config.head,
        drop_rate=config.drop_rate,
    )


def load_trained(run_dir: str | Path, device: str = "cpu") -> TrainedModel:
    """Rebuild a trained model from a run directory: architecture from config, weights from
    ``best.safetensors`` (no network needed: the architecture is built without pretrained
    weights)."""
    run = Path(run_dir)
    if not (run / CONFIG_FILE).is_file():
        raise StageError(f"{run} is not a training run: no {CONFIG_FILE} (run `oiforge train`)")
    config = read_config(run / CONFIG_FILE)
    labels = read_labels(run)
    if not (run / BEST_FILE).is_file():
        raise StageError(f"{run} has no {BEST_FILE}: training did not finish an epoch")
    model = build_model(config, pretrained=False)
    try:
        model.load_state_dict(load_file(str(run / BEST_FILE), device="cpu"))
    except (RuntimeError, OSError) as exc:
        raise MalformedFileError(str(run / BEST_FILE), str(exc).splitlines()[0]) from exc
    model.to(torch.device(device)).eval()
    return TrainedModel(
        model=model,
        classes=labels.names,
        mids=[c.mid for c in labels.classes],
        preprocessing=labels.preprocessing.to_json(),
        config=config.model_dump(),
        run_dir=run,
    )
