"""The training loop: one epoch of steps, validation, learning-rate schedules.

Works the same on images (finetune, scratch: the module is the full model) and on cached
features (probe: the module is the head alone).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

from oiforge.errors import StageError, UserError
from oiforge.train.events import Step

Inputs = tuple[torch.Tensor, torch.Tensor, list[int]]  # x, y, bad sample indexes


class NonFiniteLossError(StageError):
    """The loss became NaN or infinite."""


class OutOfMemoryError(UserError):
    """The accelerator ran out of memory; a smaller batch is the usual fix."""


@dataclass
class EpochStats:
    loss: float = 0.0
    correct: int = 0
    seen: int = 0
    steps: int = 0
    bad: list[int] = field(default_factory=list)
    stopped: str = ""

    @property
    def mean_loss(self) -> float:
        return self.loss / self.seen if self.seen else float("nan")

    @property
    def acc(self) -> float:
        return self.correct / self.seen if self.seen else float("nan")


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


def lr_factor(step: int, total: int, warmup: int, kind: str) -> float:
    """Cosine with linear warm-up, or one-cycle (30% warm-up, cosine down to 0)."""
    if kind == "onecycle":
        warmup = max(1, int(0.3 * total))
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _autocast(ctx: StepContext) -> AbstractContextManager[object]:
    if ctx.amp_dtype is None:
        return nullcontext()
    return torch.autocast(ctx.device.type, dtype=ctx.amp_dtype)


def _to_device(ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.to(ctx.device, non_blocking=True)
    if ctx.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(ctx.device, non_blocking=True)


def train_step(ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    """One optimizer step; returns (summed loss, correct count)."""
    x, y = _to_device(ctx, x, y)
    with _autocast(ctx):
        logits = ctx.module(x)
        loss = ctx.loss_fn(logits.float(), y)
    if not torch.isfinite(loss):
        raise NonFiniteLossError(f"the loss became {loss.item()}")
    ctx.optimizer.zero_grad(set_to_none=True)
    if ctx.scaler is not None:
        ctx.scaler.scale(loss).backward()
        ctx.scaler.step(ctx.optimizer)
        ctx.scaler.update()
    else:
        loss.backward()
        ctx.optimizer.step()
    correct = int((logits.argmax(1) == y).sum())
    return float(loss.detach()) * len(y), correct


def train_epoch(
    ctx: StepContext, batches: Iterable[Inputs], first_step: int
) -> Generator[Step, None, EpochStats]:
    """Run one epoch; yields a Step per batch; stops early when ``should_stop`` says why."""
    stats = EpochStats()
    ctx.module.train()
    step = first_step
    for i, (x, y, bad) in enumerate(batches):
        stats.bad += bad
        if len(y) == 0:
            continue
        ctx.set_lr(step)
        try:
            loss, correct = train_step(ctx, x, y)
        except torch.OutOfMemoryError as exc:
            raise OutOfMemoryError(
                f"out of accelerator memory at batch size {len(y)}: try a smaller --batch-size"
            ) from exc
        step += 1
        stats.steps += 1
        stats.loss += loss
        stats.correct += correct
        stats.seen += len(y)
        yield Step("train", i + 1, stats.mean_loss, stats.acc)
        stats.stopped = ctx.should_stop()
        if stats.stopped:
            break
    return stats


@torch.no_grad()
def evaluate_batches(ctx: StepContext, batches: Iterable[Inputs]) -> EpochStats:
    """Mean loss and accuracy over ``batches`` in eval mode."""
    stats = EpochStats()
    ctx.module.eval()
    for x, y, bad in batches:
        stats.bad += bad
        if len(y) == 0:
            continue
        xd, yd = _to_device(ctx, x, y)
        with _autocast(ctx):
            logits = ctx.module(xd).float()
        stats.loss += float(ctx.loss_fn(logits, yd)) * len(y)
        stats.correct += int((logits.argmax(1) == yd).sum())
        stats.seen += len(y)
    return stats


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
