"""The run directory: every file a training run writes and reads back.

    RUN/config.yaml          the resolved TrainConfig (model, num_classes, image_size, mode, ...)
    RUN/labels.json          {"classes": [{index, name, mid}], "preprocessing": {...}}
                             (multi-label: + "task", "thresholds" chosen on validation)
    RUN/best.safetensors     state dict of the FULL model as built by ``create_model``
    RUN/metrics.csv          one row per epoch (probe: per L-BFGS round)
    RUN/curves.png           training curves
    RUN/summary.json         the run's summary (auto: every candidate's score and time)
    RUN/checkpoint.safetensors  the last epoch's full state, for ``--resume``
    RUN/candidates/<name>/   auto: each candidate's own run directory
    RUN/seeds.json           ``--seeds N``: every seed's results, mean and std

``load_trained(run_dir)`` rebuilds the model from these files alone (no network, no pickle).
Checkpoints are one safetensors file: the model (``model/<name>``), the optimizer state
(``opt/<param>/<name>``) and torch's CPU RNG state as tensors; everything else (epoch,
optimizer hyper-parameters, early-stopping state, the metrics history, Python/NumPy RNG
states) as JSON in the file's metadata.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save
from torch import nn

from oiforge.atomic import write_bytes_atomic, write_text_atomic
from oiforge.contracts import run as run_files
from oiforge.contracts.dataset import ClassInfo, Task
from oiforge.contracts.run import CONFIG_FILE as CONFIG_FILE  # train.loop and auto import it here
from oiforge.contracts.run import LABELS_FILE, Labels, Preprocessing
from oiforge.errors import InvalidInputError, MalformedFileError, StageError
from oiforge.train.config import (
    ENSEMBLE,
    TrainConfig,
    config_differences,
    dump_config,
    read_config,
)
from oiforge.train.heads import choose_thresholds, mean_average_precision
from oiforge.train.models import build_ensemble, create_model

BEST_FILE = "best.safetensors"
METRICS_FILE = "metrics.csv"
CURVES_FILE = "curves.png"
CHECKPOINT_FILE = "checkpoint.safetensors"
SUMMARY_FILE = "summary.json"
SEEDS_FILE = "seeds.json"
CANDIDATES_DIR = "candidates"


@dataclass(frozen=True)
class TrainedModel:
    """A trained classifier: ``model`` (eval mode, NCHW normalised input -> logits) + labels."""

    model: nn.Module
    classes: list[str]
    mids: list[str]
    preprocessing: dict[str, Any]
    config: dict[str, Any]
    run_dir: Path
    task: Task = "singlelabel"
    thresholds: tuple[float, ...] | None = None

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"


def write_config(run_dir: Path, config: TrainConfig) -> None:
    write_text_atomic(run_dir / CONFIG_FILE, dump_config(config))


def write_labels(
    run_dir: Path,
    classes: Sequence[ClassInfo],
    preprocessing: dict[str, Any],
    task: Task = "singlelabel",
    thresholds: Sequence[float] | None = None,
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
    cutoffs = None if thresholds is None else tuple(float(t) for t in thresholds)
    run_files.write_labels(run_dir / LABELS_FILE, Labels(tuple(classes), pre, None, task, cutoffs))


def set_thresholds(run_dir: Path, thresholds: Sequence[float]) -> None:
    """Record a multi-label model's per-class thresholds in the run's ``labels.json``."""
    labels = read_labels(run_dir)
    cutoffs = tuple(float(t) for t in thresholds)
    run_files.write_labels(run_dir / LABELS_FILE, replace(labels, thresholds=cutoffs))


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
    """The model a config describes (architecture only unless ``pretrained``); auto's
    ensemble when ``chosen`` says so (architecture only: its weights are the run's)."""
    multilabel = config.task == "multilabel"
    if config.chosen == ENSEMBLE:
        members = [config.replace(chosen="", head=m.head) for m in config.members]
        return build_ensemble(
            [build_model(m, pretrained=False) for m in members],
            [m.shared for m in config.members],
            config.trunk_blocks,
            multilabel,
        )
    return create_model(
        config.model,
        config.num_classes,
        pretrained=pretrained,
        head=config.head,
        drop_rate=config.drop_rate,
        multilabel=multilabel,
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
        task=labels.task,
        thresholds=labels.thresholds,
    )


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MalformedFileError(str(path), str(exc)) from exc
    if not isinstance(data, dict):
        raise MalformedFileError(str(path), "expected a JSON object")
    return data


def prepare_run_dir(config: TrainConfig, resume: bool) -> bool:
    """Create the run dir; on resume check the config matches. True if a checkpoint exists."""
    run = Path(config.out)
    has_run = (run / CONFIG_FILE).is_file()
    if resume:
        if not has_run:
            raise InvalidInputError(f"nothing to resume in {run}: no {CONFIG_FILE}")
        old = read_config(run / CONFIG_FILE)
        if old.task != config.task:
            raise InvalidInputError(
                f"--resume: the run in {run} trained a {old.task} model, but {config.dataset} "
                f"is a {config.task} dataset; the two cannot continue each other (train into "
                "a new --out)"
            )
        diffs = config_differences(old, config)
        if diffs:
            raise InvalidInputError(
                "--resume with a different config: " + "; ".join(diffs) + " (use a new --out)"
            )
        return (run / CHECKPOINT_FILE).is_file()
    if has_run:
        raise InvalidInputError(f"{run} already holds a run: pass --resume or choose another --out")
    run.mkdir(parents=True, exist_ok=True)
    return False


# --- checkpoints (--resume) ---


@dataclass
class LoopState:
    """What the loop carries from epoch to epoch."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best_metric: float | None = None
    best_epoch: int = 0
    stale_epochs: int = 0
    elapsed_s: float = 0.0
    bad_samples: list[int] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: LoopState
) -> None:
    """Write the resumable state atomically."""
    tensors: dict[str, torch.Tensor] = {
        f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()
    }
    opt = optimizer.state_dict()
    for pid, values in opt["state"].items():
        for name, value in values.items():
            tensors[f"opt/{pid}/{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng/torch"] = torch.get_rng_state()
    groups = [dict(g) for g in opt["param_groups"]]
    meta = {
        "loop": json.dumps(asdict(state)),
        "param_groups": json.dumps(groups),
        "py_rng": json.dumps(_py_rng_state()),
        "np_rng": json.dumps(_np_rng_state()),
    }
    write_bytes_atomic(path, save(tensors, metadata=meta))


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> LoopState:
    """Restore model, optimizer and RNG states; return the loop state."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata()
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (not a dict)
    except (OSError, ValueError, RuntimeError) as exc:
        raise MalformedFileError(str(path), f"unreadable checkpoint: {exc}") from exc
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt/"):
            _, pid, name = key.split("/", 2)
            opt_state.setdefault(int(pid), {})[name] = value
    groups = json.loads(meta["param_groups"])
    optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    torch.set_rng_state(tensors["rng/torch"])
    _set_py_rng_state(json.loads(meta["py_rng"]))
    _set_np_rng_state(json.loads(meta["np_rng"]))
    return LoopState(**json.loads(meta["loop"]))


def _py_rng_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _set_py_rng_state(state: list[Any]) -> None:
    random.setstate((state[0], tuple(state[1]), state[2]))


def _np_rng_state() -> list[Any]:
    state: Any = np.random.get_state(legacy=True)
    name, keys, pos, has_gauss, cached = state
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _set_np_rng_state(state: list[Any]) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


# --- curves.png ---


def plot_curves(history: Sequence[dict[str, Any]], path: Path) -> None:
    """Loss and accuracy per epoch, train and validation, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
        for split in ("train", "val"):
            ax.plot(epochs, [r[f"{split}_{metric}"] for r in history], marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


# --- --seeds N ---

KEYS = ("best_val_acc", "best_val_map", "accuracy", "map", "macro_f1", "ece", "train_seconds")


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


@dataclass(frozen=True)
class Outcome:
    """What one training run ends with: its summary and the best model's validation
    probabilities (rows in the order of the decodable validation samples)."""

    summary: dict[str, Any]
    val_probs: torch.Tensor
    val_labels: torch.Tensor


def finish_run(
    config: TrainConfig,
    state: LoopState,
    stopped: str,
    val_probs: torch.Tensor,
    val_labels: torch.Tensor,
    extra: dict[str, Any],
    main: bool = True,
) -> Outcome:
    """The run's summary (written with its curves by rank 0, ``main``) and its outcome."""
    run = Path(config.out)
    if main:
        plot_curves(state.history, run / CURVES_FILE)
    if config.task == "multilabel":
        extra = {**extra, **_label_thresholds(run, val_probs, val_labels, main)}
    best = next((r for r in state.history if r["epoch"] == state.best_epoch), {})
    summary = {
        "run_dir": str(run),
        "model": config.model,
        "mode": config.mode,
        "seed": config.seed,
        "epochs_run": state.epoch,
        "best_epoch": state.best_epoch,
        "best_val_acc": best.get("val_acc"),
        "best_val_loss": best.get("val_loss"),
        "stopped": stopped,
        "undecodable_train_images": len(state.bad_samples),
        "train_seconds": round(state.elapsed_s, 3),
        **extra,
    }
    if main:
        write_json(run / SUMMARY_FILE, summary)
    return Outcome(summary, val_probs, val_labels)


def _label_thresholds(
    run: Path, probs: torch.Tensor, targets: torch.Tensor, main: bool
) -> dict[str, Any]:
    """Multi-label: the best model's validation mAP, and its per-class thresholds at the best
    validation F1, written to labels.json (``oiforge evaluate`` chooses them again)."""
    if not len(targets):
        return {"best_val_map": None}
    p, t = probs.numpy(), targets.numpy()
    if main:
        set_thresholds(run, choose_thresholds(p, t)[0])
    value = mean_average_precision(p, t)
    return {"best_val_map": None if math.isnan(value) else round(value, 6)}
