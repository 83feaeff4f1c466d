"""What one training step is made of, and an epoch of them: the optimizer (AdamW, backbone
and head groups), the loss, the learning-rate schedule, the deadline (``--max-minutes``,
``--budget-usd``), one step (AMP and channels_last on CUDA), the steps of one epoch with a
host sync every :data:`SYNC_EVERY` batches, and evaluation. ``loop.py`` runs them epoch by
epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from oiforge.errors import StageError, UserError
from oiforge.progress import Step
from oiforge.train.config import TrainConfig
from oiforge.train.dataset import UNKNOWN
from oiforge.train.heads import MultiLabelLoss, hits, probabilities
from oiforge.train.images import Inputs, class_weights, positive_weights

#: Steps between host syncs (progress event, finite-loss check, stop check).
SYNC_EVERY = 8


class NonFiniteLossError(StageError):
    """The loss became NaN or infinite."""


class OutOfMemoryError(UserError):
    """The accelerator ran out of memory; a smaller batch is the usual fix."""


def create_optimizer(
    backbone: Sequence[nn.Parameter], head: nn.Module, config: TrainConfig
) -> torch.optim.AdamW:
    """AdamW with two groups: backbone (index 0; empty for a head alone) and head (index 1)."""
    lr = float(config.lr or 0.0)
    groups: list[dict[str, Any]] = [
        {"params": list(backbone), "lr": 0.0},
        {"params": list(head.parameters()), "lr": lr},
    ]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=config.weight_decay)


def create_loss(config: TrainConfig, targets: torch.Tensor) -> nn.Module:
    """Cross-entropy (label smoothing, class weights with ``--balance weights``); multi-label:
    ``--loss`` over the verified labels, positive weights with ``--balance weights`` (label
    smoothing does not apply)."""
    weights = config.balance == "weights"
    if config.task == "multilabel":
        return MultiLabelLoss(config.loss, positive_weights(targets) if weights else None)
    weight = class_weights(targets, config.num_classes) if weights else None
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)


def validation_loss(config: TrainConfig) -> nn.Module:
    """The loss that picks the best epoch: plain cross-entropy, or plain BCE over the
    verified labels (no weights, no smoothing, whatever ``--loss``: a proper score)."""
    return MultiLabelLoss() if config.task == "multilabel" else nn.CrossEntropyLoss()


def lr_factor(step: int, total: int, warmup: int, kind: str) -> float:
    """Cosine with linear warm-up, or one-cycle (30% warm-up, cosine down to 0)."""
    if kind == "onecycle":
        warmup = max(1, int(0.3 * total))
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def lr_setter(
    config: TrainConfig, optimizer: torch.optim.Optimizer, spe: int
) -> Callable[[int], None]:
    """Per-step learning rates for the (backbone, head) groups; finetune has a head phase and
    runs its backbone at ``backbone_lr_mult`` times the head's rate."""
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


@dataclass
class EpochStats:
    """Sums of an epoch: ``correct`` of ``judged`` (images; multi-label: verified labels)."""

    loss: float = 0.0
    correct: int = 0
    seen: int = 0
    steps: int = 0
    bad: list[int] = field(default_factory=list)
    stopped: str = ""
    judged: int = 0

    @property
    def mean_loss(self) -> float:
        return self.loss / self.seen if self.seen else float("nan")

    @property
    def acc(self) -> float:
        return self.correct / self.judged if self.judged else float("nan")


@dataclass
class Deadline:
    """Stops a run after ``max_minutes`` or once ``budget_usd`` is spent at ``usd_per_hour``."""

    started: float = field(default_factory=time.monotonic)
    already_s: float = 0.0
    max_minutes: float | None = None
    budget_usd: float | None = None
    usd_per_hour: float | None = None

    def elapsed_s(self) -> float:
        return self.already_s + time.monotonic() - self.started

    def reason(self) -> str:
        elapsed = self.elapsed_s()
        if self.max_minutes is not None and elapsed >= self.max_minutes * 60:
            return f"time limit of {self.max_minutes:g} min reached"
        if self.budget_usd is not None and self.usd_per_hour:
            spent = elapsed / 3600 * self.usd_per_hour
            if spent >= self.budget_usd:
                return f"budget of ${self.budget_usd:g} reached (${spent:.2f} spent)"
        return ""


@dataclass(frozen=True)
class StepContext:
    """What a step needs besides the batch."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    device: torch.device
    set_lr: Callable[[int], None]
    should_stop: Callable[[], str]
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    scaler: torch.amp.GradScaler | None = None
    #: Several ranks: every rank must take every step (each backward is an all-reduce), so a
    #: rank whose whole batch failed to decode takes an idle step instead of skipping it.
    distributed: bool = False
    sample_shape: tuple[int, ...] = ()  # one input's shape, for the idle step's blank input
    labels_width: int = 0  # multi-label: the class count (targets are (N, C)); else 0


def autocast(ctx: StepContext) -> AbstractContextManager[object]:
    if ctx.amp_dtype is None:
        return nullcontext()
    return torch.autocast(ctx.device.type, dtype=ctx.amp_dtype)


def to_device(ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.to(ctx.device, non_blocking=True)
    if ctx.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(ctx.device, non_blocking=True)


def train_step(
    ctx: StepContext, x: torch.Tensor, y: torch.Tensor, weight: float = 1.0
) -> tuple[torch.Tensor | int, ...]:
    """One optimizer step; returns (summed loss, correct count, judged count) on the device
    (judged: images; multi-label: verified labels, whose answers at p = 0.5 are counted).

    No host sync here: on a GPU the next batch is queued while this one runs; the loop reads
    the running sums (and checks the loss is finite) only every ``SYNC_EVERY`` steps.
    """
    x, y = to_device(ctx, x, y)
    with autocast(ctx):
        logits = ctx.module(x)
        loss = ctx.loss_fn(logits.float(), y)
        if weight != 1.0:
            loss = loss * weight
    ctx.optimizer.zero_grad(set_to_none=True)
    if ctx.scaler is not None:
        ctx.scaler.scale(loss).backward()
        ctx.scaler.step(ctx.optimizer)
        ctx.scaler.update()
    else:
        loss.backward()
        ctx.optimizer.step()
    correct, judged = hits(logits.detach(), y)
    return loss.detach() * len(y), correct, judged


def idle_step(ctx: StepContext) -> None:
    """A step that learns nothing, for a rank with no usable sample in its batch: one blank
    input through the model in eval mode (no batch-norm statistics taken from it), its loss
    times zero, so this rank joins the gradient all-reduce with zero gradients and applies
    the same averaged update as the others (their parameters stay identical; when no rank
    had a sample, momentum and weight decay still move them, the same on every rank)."""
    blank = torch.zeros((1, *ctx.sample_shape))
    target = torch.zeros(1, dtype=torch.long)
    if ctx.labels_width:
        target = torch.full((1, ctx.labels_width), UNKNOWN)
    was_training = ctx.module.training
    ctx.module.eval()
    try:
        train_step(ctx, blank, target, weight=0.0)
    finally:
        ctx.module.train(was_training)


@dataclass
class _Running:
    """Loss, correct-count and judged-count sums kept on the device between host syncs."""

    loss: torch.Tensor | int | None = None
    correct: torch.Tensor | int | None = None
    judged: torch.Tensor | int | None = None

    def add(
        self, loss: torch.Tensor | int, correct: torch.Tensor | int, judged: torch.Tensor | int
    ) -> None:
        self.loss = loss if self.loss is None else self.loss + loss
        self.correct = correct if self.correct is None else self.correct + correct
        self.judged = judged if self.judged is None else self.judged + judged

    def flush(self, stats: EpochStats, check: bool = True) -> None:
        """Move the sums into ``stats`` (one host sync); a NaN/inf training loss stops the run."""
        if self.loss is None or self.correct is None or self.judged is None:
            return
        loss, correct, judged = float(self.loss), int(self.correct), int(self.judged)
        self.loss = self.correct = self.judged = None
        if check and not math.isfinite(loss):
            raise NonFiniteLossError(f"the loss became {loss}")
        stats.loss += loss
        stats.correct += correct
        stats.judged += judged


def train_epoch(
    ctx: StepContext, batches: Iterable[Inputs], first_step: int
) -> Generator[Step, None, EpochStats]:
    """Run one epoch; yields a Step every ``SYNC_EVERY`` batches and at the end; stops early
    when ``should_stop`` says why (asked at those batches, the same on every rank; one
    process asks at every batch, so a deadline is never overrun by more than a step)."""
    stats, running = EpochStats(), _Running()
    ctx.module.train()
    step, batch = first_step, 0
    for batch, (x, y, bad) in enumerate(batches, 1):
        stats.bad += bad
        if len(y):
            ctx.set_lr(step)
            running.add(*_guarded_step(ctx, x, y))
            step, stats.steps, stats.seen = step + 1, stats.steps + 1, stats.seen + len(y)
        elif ctx.distributed:
            ctx.set_lr(step)
            idle_step(ctx)
            step, stats.steps = step + 1, stats.steps + 1
        if batch % SYNC_EVERY == 0:
            yield _sync(ctx, stats, running)
            if stats.stopped:
                return stats
        elif not ctx.distributed and ctx.should_stop():  # one process: ask every batch
            yield _sync(ctx, stats, running)
            return stats
    if batch % SYNC_EVERY:
        yield _sync(ctx, stats, running)
    return stats


def _guarded_step(
    ctx: StepContext, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor | int, ...]:
    try:
        return train_step(ctx, x, y)
    except torch.OutOfMemoryError as exc:
        raise OutOfMemoryError(
            f"out of accelerator memory at batch size {len(y)}: try a smaller --batch-size"
        ) from exc


def _sync(ctx: StepContext, stats: EpochStats, running: _Running) -> Step:
    """Read the running sums (every rank at the same batch), then ask whether to stop."""
    running.flush(stats)
    stats.stopped = ctx.should_stop()
    return Step("train", stats.steps, stats.mean_loss, stats.acc)


@torch.no_grad()
def evaluate_batches(ctx: StepContext, batches: Iterable[Inputs]) -> EpochStats:
    """Summed loss and correct count over ``batches`` in eval mode (one host sync at the end)."""
    stats, running = EpochStats(), _Running()
    ctx.module.eval()
    for x, y, bad in batches:
        stats.bad += bad
        if len(y) == 0:
            continue
        xd, yd = to_device(ctx, x, y)
        with autocast(ctx):
            logits = ctx.module(xd).float()
        running.add(ctx.loss_fn(logits, yd) * len(y), *hits(logits, yd))
        stats.seen += len(y)
    running.flush(stats, check=False)
    return stats


@torch.no_grad()
def val_probabilities(
    ctx: StepContext, batches: Iterable[Inputs]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (restored best) model's class probabilities on this rank's validation samples."""
    ctx.module.eval()
    probs, labels = [], []
    for x, y, _bad in batches:
        if len(y):
            xd, _ = to_device(ctx, x, y)
            with autocast(ctx):
                probs.append(probabilities(ctx.module(xd).float(), bool(ctx.labels_width)).cpu())
            labels.append(y)
    if not probs:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
    return torch.cat(probs), torch.cat(labels)
