"""The epoch loop: train, validate, keep the best, checkpoint, stop early or on a budget."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from oiforge.atomic import write_text_atomic
from oiforge.train.checkpoint import LoopState, save_checkpoint
from oiforge.train.config import TrainConfig
from oiforge.train.ddp import Dist, all_reduce_sums, any_rank, gather_lists, wrap
from oiforge.train.events import EpochEnd, Event, Finished, Notice, PhaseStart
from oiforge.train.feeders import Feeder
from oiforge.train.loop import (
    Deadline,
    EpochStats,
    NonFiniteLossError,
    StepContext,
    evaluate_batches,
    lr_factor,
    train_epoch,
)
from oiforge.train.models import backbone_parameters, get_head
from oiforge.train.plots import plot_curves
from oiforge.train.rundir import (
    BEST_FILE,
    CHECKPOINT_FILE,
    CURVES_FILE,
    write_metrics,
    write_weights,
)

SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class Parts:
    """What the epoch loop works on."""

    config: TrainConfig
    model: nn.Module
    feeder: Feeder
    optimizer: torch.optim.Optimizer
    device: torch.device
    loss_fn: nn.Module
    d: Dist = field(default_factory=Dist)
    wrapped: dict[bool, nn.Module] = field(default_factory=dict)  # DDP wrapper per phase

    @property
    def run_dir(self) -> Path:
        return Path(self.config.out)


def lr_setter(
    config: TrainConfig, optimizer: torch.optim.Optimizer, spe: int
) -> Callable[[int], None]:
    """Per-step learning rates for the (backbone, head) groups; finetune has a head phase."""
    lr = float(config.lr or 0)
    head_steps = config.head_epochs * spe if config.mode == "finetune" else 0
    total = max(config.epochs * spe, head_steps + 1)
    warmup = int(config.warmup_epochs * spe)
    mult = config.backbone_lr_mult if config.mode == "finetune" else 1.0

    def set_lr(step: int) -> None:
        if step < head_steps:
            lrs = (0.0, lr * lr_factor(step, head_steps, warmup, config.schedule))
        else:
            f = lr_factor(step - head_steps, total - head_steps, warmup, config.schedule)
            lrs = (lr * mult * f, lr * f)
        for group, value in zip(optimizer.param_groups, lrs, strict=True):
            group["lr"] = value

    return set_lr


def _set_trainable(parts: Parts, epoch: int) -> nn.Module:
    """The module to train this epoch; finetune freezes the backbone for ``head_epochs``.
    Several ranks: wrapped in DDP, a new wrapper when the trainable parameters change."""
    config, model = parts.config, parts.model
    if config.mode == "probe":
        return get_head(model)
    frozen = config.mode == "finetune" and epoch <= config.head_epochs
    for p in backbone_parameters(model):
        p.requires_grad_(not frozen)
    if frozen not in parts.wrapped:
        parts.wrapped.clear()
        module = _HeadOnlyTrain(model) if frozen else model
        parts.wrapped[frozen] = wrap(parts.d, module, parts.device)
    return parts.wrapped[frozen]


class _HeadOnlyTrain(nn.Module):
    """Runs the full model, but ``train()`` leaves the frozen backbone (BatchNorm) in eval."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    def train(self, mode: bool = True) -> _HeadOnlyTrain:
        self.inner.eval()
        get_head(self.inner).train(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)  # type: ignore[no-any-return]


def _context(
    parts: Parts, module: nn.Module, loss_fn: nn.Module, deadline: Deadline
) -> StepContext:
    cuda = parts.device.type == "cuda" and parts.config.amp
    dtype = None
    if cuda:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    spe = parts.feeder.steps_per_epoch
    return StepContext(
        module=module,
        optimizer=parts.optimizer,
        loss_fn=loss_fn.to(parts.device),
        device=parts.device,
        set_lr=lr_setter(parts.config, parts.optimizer, spe),
        should_stop=_stop_check(parts, deadline),
        amp_dtype=dtype,
        channels_last=cuda and parts.config.mode != "probe",
        scaler=scaler,
        distributed=parts.d.active,
        sample_shape=parts.feeder.sample_shape,
    )


def _stop_check(parts: Parts, deadline: Deadline) -> Callable[[], str]:
    """The deadline's check; with several ranks, one rank's "stop" stops them all (a rank
    leaving alone would leave the others waiting in an all-reduce)."""
    config, d = parts.config, parts.d
    if not d.active or (config.max_minutes is None and config.budget_usd is None):
        return deadline.reason

    def agreed() -> str:
        reason = deadline.reason()
        if any_rank(d, bool(reason), parts.device):
            return reason or "another rank reached the time or budget limit"
        return ""

    return agreed


def _reduce(parts: Parts, stats: EpochStats) -> EpochStats:
    """The epoch's sums over all ranks (each saw its own share of the images)."""
    if not parts.d.active:
        return stats
    loss, correct, seen = all_reduce_sums(
        parts.d, [stats.loss, stats.correct, stats.seen], parts.device
    )
    bad = gather_lists(parts.d, stats.bad)
    return EpochStats(loss, int(correct), int(seen), stats.steps, bad, stats.stopped)


def _improved(config: TrainConfig, state: LoopState, val: EpochStats) -> bool:
    metric = val.acc if config.monitor == "val_acc" else val.mean_loss
    if math.isnan(metric):
        return False
    best = state.best_metric
    if best is None:
        return True
    if config.monitor == "val_acc":
        return metric > best + config.min_delta
    return metric < best - config.min_delta


def _record(
    parts: Parts, state: LoopState, epoch: int, train: EpochStats, val: EpochStats
) -> EpochEnd:
    is_best = _improved(parts.config, state, val)
    if is_best:
        state.best_metric = val.acc if parts.config.monitor == "val_acc" else val.mean_loss
        state.best_epoch, state.stale_epochs = epoch, 0
        if parts.d.is_main:
            write_weights(parts.run_dir / BEST_FILE, parts.model)
    else:
        state.stale_epochs += 1
    row: dict[str, Any] = {
        "epoch": epoch,
        "train_loss": round(train.mean_loss, 6),
        "train_acc": round(train.acc, 6),
        "val_loss": round(val.mean_loss, 6),
        "val_acc": round(val.acc, 6),
        "lr": parts.optimizer.param_groups[-1]["lr"],
        "seconds": round(state.elapsed_s, 3),
        "best": int(is_best),
    }
    state.history.append(row)
    if parts.d.is_main:
        write_metrics(parts.run_dir, state.history)
    return EpochEnd(row, is_best)


def fit(
    config: TrainConfig,
    model: nn.Module,
    feeder: Feeder,
    optimizer: torch.optim.Optimizer,
    state: LoopState,
    device: torch.device,
    loss_fn: nn.Module,
    d: Dist = Dist(),
) -> Iterator[Event]:
    """Epochs from ``state.epoch + 1``; yields progress; finishes with the best model restored.
    Every rank runs this; only rank 0 writes files."""
    parts = Parts(config, model, feeder, optimizer, device, loss_fn, d)
    deadline = Deadline(
        already_s=state.elapsed_s,
        max_minutes=config.max_minutes,
        budget_usd=config.budget_usd,
        usd_per_hour=config.usd_per_hour,
    )
    val_module = get_head(model) if config.mode == "probe" else model
    val_ctx = _context(parts, val_module, nn.CrossEntropyLoss(), deadline)
    stopped = ""
    for epoch in range(state.epoch + 1, config.epochs + 1):
        yield PhaseStart("epoch", feeder.steps_per_epoch, epoch, config.epochs)
        train = yield from _train_epoch(parts, state, epoch, deadline)
        state.step += train.steps
        train = _reduce(parts, train)
        val_ctx.module.eval()
        val = _reduce(parts, evaluate_batches(val_ctx, feeder.val()))
        state.epoch, state.elapsed_s = epoch, deadline.elapsed_s()
        new_bad = sorted(set(train.bad) - set(state.bad_samples))
        state.bad_samples = sorted(set(state.bad_samples) | set(new_bad))
        end = _record(parts, state, epoch, train, val)
        if parts.d.is_main:
            save_checkpoint(parts.run_dir / CHECKPOINT_FILE, model, optimizer, state)
        yield end
        if new_bad:
            yield Notice("warning", f"{len(new_bad)} training images could not be decoded: skipped")
        stopped = train.stopped or _early_stop(config, state)
        if stopped:
            yield Notice("info", f"stopped after epoch {epoch}: {stopped}")
            break
    yield _finish(parts, state, stopped)


def _train_epoch(
    parts: Parts, state: LoopState, epoch: int, deadline: Deadline
) -> Generator[Event, None, EpochStats]:
    """One epoch's steps, seeded by (seed, epoch) so a resumed run repeats it exactly."""
    config = parts.config
    torch.manual_seed(config.seed * 100_003 + epoch)
    ctx = _context(parts, _set_trainable(parts, epoch), parts.loss_fn, deadline)
    try:
        return (yield from train_epoch(ctx, parts.feeder.train(epoch), state.step))
    except NonFiniteLossError as exc:
        kept = "the best model so far is kept" if state.best_epoch else "no model was saved"
        raise NonFiniteLossError(
            f"{exc} in epoch {epoch}: training stopped ({kept}); "
            f"lower --lr (now {config.lr:g}) or check the data"
        ) from exc


def _early_stop(config: TrainConfig, state: LoopState) -> str:
    if state.stale_epochs >= config.patience:
        return f"early stopping: {config.monitor} did not improve for {config.patience} epochs"
    return ""


def _finish(parts: Parts, state: LoopState, stopped: str) -> Finished:
    run = parts.run_dir
    if parts.d.is_main and (run / BEST_FILE).is_file():
        parts.model.load_state_dict(load_file(str(run / BEST_FILE), device=str(parts.device)))
    if parts.d.is_main:
        plot_curves(state.history, run / CURVES_FILE)
    best = next((r for r in state.history if r["epoch"] == state.best_epoch), {})
    summary = {
        "run_dir": str(run),
        "model": parts.config.model,
        "mode": parts.config.mode,
        "seed": parts.config.seed,
        "epochs_run": state.epoch,
        "best_epoch": state.best_epoch,
        "best_val_acc": best.get("val_acc"),
        "best_val_loss": best.get("val_loss"),
        "stopped": stopped or "completed",
        "undecodable_train_images": len(state.bad_samples),
        "train_seconds": round(state.elapsed_s, 3),
    }
    if parts.d.is_main:
        write_text_atomic(run / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return Finished(str(run), summary)
