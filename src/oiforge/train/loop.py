"""``run_training``: the training loop, read top to bottom.

1. Setup: the dataset's index, the resolved config (``config.resolve_config``), the run
   directory, the device.
2. The model, and what it trains on per mode:
   - ``probe``: pooled features computed once (cached); a linear head fitted to convergence
     by L-BFGS with its L2 strength chosen by grouped cross-validation (``heads.py``), or an
     MLP head (``--head mlp``) trained by the epoch loop below;
   - ``partial``: the activations before the last ``--train-blocks`` blocks, cached for
     ``--views`` augmented views of every training image; the head starts from the linear
     probe on those features (LP-FT), then the last blocks + head train in the epoch loop;
   - ``finetune``: images; the head first (``--head-epochs``), then everything, the backbone
     at ``--backbone-lr-mult`` times the head's learning rate;
   - ``scratch``: images, a small CNN from random weights;
   - ``auto``: the candidates of ``auto.py``, each one of the above.
   The cached modes prepare their inputs in ``cache.py``.
3. The optimizer (AdamW, backbone and head groups), the loss (cross-entropy with label
   smoothing and optional class weights; multi-label: binary cross-entropy or the asymmetric
   loss over the verified labels only, optional positive weights), the learning-rate
   schedule: ``steps.py``.
4. The epoch loop: train (``steps.train_epoch``), validate, keep the best (``--monitor``,
   never before ``--min-epochs`` unless nothing better exists), checkpoint, stop early or on
   a budget.

A resumed run reproduces an uninterrupted one (same seed, CPU). Under torchrun every rank
runs this; rank 0 alone writes the run directory (see ``ddp.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from oiforge.errors import InvalidInputError
from oiforge.progress import EpochEnd, Event, Finished, Notice, PhaseStart
from oiforge.train import ddp
from oiforge.train.cache import cached_inputs, train_linear_probe
from oiforge.train.config import TrainConfig, resolve_config
from oiforge.train.dataset import DatasetIndex, open_dataset
from oiforge.train.ddp import Dist, all_reduce_sums, any_rank, gather_lists, wrap
from oiforge.train.images import Feeder, FeedOptions, dataset_notices, image_feeder, targets_of
from oiforge.train.models import backbone_parameters, get_head, pick_device, preprocessing_for
from oiforge.train.rundir import (
    BEST_FILE,
    CHECKPOINT_FILE,
    LoopState,
    Outcome,
    build_model,
    finish_run,
    load_checkpoint,
    prepare_run_dir,
    save_checkpoint,
    write_config,
    write_labels,
    write_metrics,
    write_weights,
)
from oiforge.train.steps import (
    Deadline,
    EpochStats,
    NonFiniteLossError,
    StepContext,
    create_loss,
    create_optimizer,
    evaluate_batches,
    lr_setter,
    train_epoch,
    val_probabilities,
    validation_loss,
)

# --- 1. setup ----------------------------------------------------------------------------


def resolve_run(config: TrainConfig) -> tuple[TrainConfig, DatasetIndex]:
    """The dataset's index and the config with everything it decides filled in."""
    index = open_dataset(
        config.dataset, config.val_fraction, config.seed, config.unknown_as_negative
    )
    return resolve_config(config, index), index


def preflight(config: TrainConfig, resume: bool) -> None:
    """The checks every rank would make, made once before starting processes (clear errors,
    exit 2, instead of N ranks failing alike)."""
    resolved, _ = resolve_run(config)
    if resolved.mode == "auto":
        raise InvalidInputError(
            "--mode auto trains its candidates in one process: drop --procs/--gpus, or name "
            "a mode (probe, partial, finetune, scratch)"
        )
    prepare_run_dir(resolved, resume)


def run_training(config: TrainConfig, resume: bool = False) -> Iterator[Event]:
    """Train as ``config`` says; yields progress; writes the run directory."""
    d = _check_world(config)
    config, index = resolve_run(config)
    if config.mode == "auto" and config.chosen:  # a finished auto run's config.yaml: its pick
        from oiforge.train.auto import candidate_config

        config = candidate_config(config)
    if config.mode == "auto":
        if d.active:
            preflight(config, resume)  # raises the message above
        from oiforge.train.auto import run_auto

        yield from run_auto(config, index, resume)
        return
    has_checkpoint = prepare_run_dir(config, resume)
    ddp.barrier(d)  # every rank has checked the run dir before rank 0 writes into it
    yield from dataset_notices(index)
    outcome = yield from train_one(config, index, has_checkpoint, d)
    if outcome is not None:
        yield Finished(config.out, outcome.summary)


def _check_world(config: TrainConfig) -> Dist:
    d = ddp.current()
    if config.world_size != d.world:
        raise InvalidInputError(
            f"the config says world_size {config.world_size}, but {d.world} process(es) run: "
            "start several with `oiforge train --procs N` or `--gpus N`"
        )
    return d


# --- 2. the model and what it trains on ----------------------------------------------------


def train_one(
    config: TrainConfig,
    index: DatasetIndex,
    has_checkpoint: bool,
    d: Dist,
    val_probs: bool = False,
) -> Generator[Event, None, Outcome | None]:
    """One run of a concrete mode into ``config.out``; None on ranks other than 0 when rank 0
    trains alone (probe, partial: the costly part, the forward passes, was sharded).
    ``val_probs``: also return the best model's validation probabilities (auto compares them).
    ``--max-minutes`` counts from here: the forward passes that fill a cache are part of it."""
    started = time.monotonic()
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    preprocessing = preprocessing_for(config.model, config.image_size, config.crop_pct)
    run = Path(config.out)
    if d.is_main:
        write_config(run, config)
        write_labels(run, index.classes, preprocessing, config.task)
    model = build_model(config, pretrained=config.pretrained).to(device)
    setup = Setup(config, model, device, has_checkpoint, val_probs, d, started)
    if config.mode == "probe" and config.head == "linear":
        return (yield from train_linear_probe(config, index, model, preprocessing, device))
    if config.mode in ("probe", "partial"):
        fed = yield from cached_inputs(config, index, model, preprocessing, device)
        if fed is None:  # a rank other than 0: rank 0 trains alone
            return None
        return (yield from _fit(setup, fed.feeder, fed.backbone, fed.labels, module=fed.module))
    if device.type == "cuda" and config.amp:
        model = model.to(memory_format=torch.channels_last)
    train, val = index.splits["train"], index.splits["val"]
    feeder = image_feeder(
        _feed_options(config), train, val, preprocessing, device.type == "cuda", d
    )
    targets = targets_of(train)
    return (yield from _fit(setup, feeder, list(backbone_parameters(model)), targets))


@dataclass(frozen=True)
class Setup:
    """One run's fixed parts, handed to its optimizer and loop."""

    config: TrainConfig
    model: nn.Module
    device: torch.device
    has_checkpoint: bool
    val_probs: bool
    d: Dist
    started: float  # time.monotonic() when the run began (its deadline counts from there)


def _feed_options(config: TrainConfig) -> FeedOptions:
    return FeedOptions(
        config.image_size, config.crop_pct, config.augment, config.balance,
        config.num_classes, config.batch_size, config.workers, config.seed,
    )  # fmt: skip


# --- 3. optimizer, loss, learning-rate schedule (steps.py) ------------------------------


def _fit(
    s: Setup,
    feeder: Feeder,
    backbone: Sequence[nn.Parameter],
    targets: torch.Tensor,
    module: nn.Module | None = None,
) -> Generator[Event, None, Outcome]:
    """Optimizer, loss, the checkpoint to resume from, then the epoch loop. ``module``: what
    trains when it is not the whole model (on one rank: its inputs were sharded already).
    ``targets``: the training targets (the loss's class or positive weights)."""
    optimizer = create_optimizer(backbone, get_head(s.model), s.config)
    checkpoint = Path(s.config.out) / CHECKPOINT_FILE
    state = load_checkpoint(checkpoint, s.model, optimizer) if s.has_checkpoint else None
    loss_fn = create_loss(s.config, targets)
    d = s.d if module is None else Dist()
    parts = Parts(
        s.config, s.model, feeder, optimizer, s.device, loss_fn, d, module=module, started=s.started
    )
    return (yield from fit(parts, state or LoopState(), s.val_probs))


# --- 4. the epoch loop -------------------------------------------------------------------


@dataclass(frozen=True)
class Parts:
    """What the epoch loop works on. ``module``: what trains and validates when it is not
    the whole model (a head on features, partial's tail on activations)."""

    config: TrainConfig
    model: nn.Module
    feeder: Feeder
    optimizer: torch.optim.Optimizer
    device: torch.device
    loss_fn: nn.Module
    d: Dist = field(default_factory=Dist)
    module: nn.Module | None = None
    started: float = field(default_factory=time.monotonic)  # when the run began
    wrapped: dict[bool, nn.Module] = field(default_factory=dict)  # DDP wrapper per phase

    @property
    def run_dir(self) -> Path:
        return Path(self.config.out)


def fit(parts: Parts, state: LoopState, val_probs: bool = False) -> Generator[Event, None, Outcome]:
    """Epochs from ``state.epoch + 1``; yields progress; finishes with the best model restored
    (and, with ``val_probs``, its validation probabilities). Every rank runs this; only rank 0
    writes files."""
    config, feeder = parts.config, parts.feeder
    deadline = Deadline(
        started=parts.started, already_s=state.elapsed_s, max_minutes=config.max_minutes,
        budget_usd=config.budget_usd, usd_per_hour=config.usd_per_hour,
    )  # fmt: skip
    val_ctx = _context(parts, parts.module or parts.model, validation_loss(config), deadline)
    stopped = ""
    for epoch in range(state.epoch + 1, config.epochs + 1):
        if state.best_epoch and (stopped := val_ctx.should_stop()):  # no epoch past the limit
            yield Notice("info", f"stopped before epoch {epoch}: {stopped}")
            break
        yield PhaseStart("epoch", feeder.steps_per_epoch, epoch, config.epochs)
        train = yield from _train_epoch(parts, state, epoch, deadline)
        state.step += train.steps
        train = _reduce(parts, train)
        val = _reduce(parts, evaluate_batches(val_ctx, feeder.val()))
        state.epoch, state.elapsed_s = epoch, deadline.elapsed_s()
        new_bad = sorted(set(train.bad) - set(state.bad_samples))
        state.bad_samples = sorted(set(state.bad_samples) | set(new_bad))
        end = _record(parts, state, epoch, train, val)
        if parts.d.is_main:
            save_checkpoint(parts.run_dir / CHECKPOINT_FILE, parts.model, parts.optimizer, state)
        yield end
        if new_bad:
            yield Notice("warning", f"{len(new_bad)} training images could not be decoded: skipped")
        stopped = train.stopped or _early_stop(config, state)
        if stopped:
            yield Notice("info", f"stopped after epoch {epoch}: {stopped}")
            break
    if parts.d.is_main and (parts.run_dir / BEST_FILE).is_file():
        best = load_file(str(parts.run_dir / BEST_FILE), device=str(parts.device))
        parts.model.load_state_dict(best)
    multilabel = config.task == "multilabel"  # its thresholds are chosen on validation
    if multilabel:
        ddp.broadcast_module(parts.d, parts.model)  # every rank: the best model
    wanted = feeder.val() if val_probs or multilabel else []
    probs, labels = val_probabilities(val_ctx, wanted)
    if multilabel:
        probs, labels = ddp.gather_rows(parts.d, probs, labels)
    return finish_run(config, state, stopped or "completed", probs, labels, {}, parts.d.is_main)


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


def _set_trainable(parts: Parts, epoch: int) -> nn.Module:
    """The module to train this epoch; finetune freezes the backbone for ``head_epochs``.
    Several ranks: wrapped in DDP, a new wrapper when the trainable parameters change."""
    config, model = parts.config, parts.model
    if parts.module is not None:
        return parts.module
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
    on_images = parts.module is None
    cuda = parts.device.type == "cuda" and parts.config.amp and on_images
    dtype = None
    if cuda:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return StepContext(
        module=module,
        optimizer=parts.optimizer,
        loss_fn=loss_fn.to(parts.device),
        device=parts.device,
        set_lr=lr_setter(parts.config, parts.optimizer, parts.feeder.steps_per_epoch),
        should_stop=_stop_check(parts, deadline),
        amp_dtype=dtype,
        channels_last=cuda,
        scaler=scaler,
        distributed=parts.d.active,
        sample_shape=parts.feeder.sample_shape,
        labels_width=parts.config.num_classes if parts.config.task == "multilabel" else 0,
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
    loss, correct, seen, judged = all_reduce_sums(
        parts.d, [stats.loss, stats.correct, stats.seen, stats.judged], parts.device
    )
    bad = gather_lists(parts.d, stats.bad)
    return EpochStats(loss, int(correct), int(seen), stats.steps, bad, stats.stopped, int(judged))


def improved(config: TrainConfig, state: LoopState, epoch: int, val: EpochStats) -> bool:
    """Whether this epoch becomes the best. Before ``min_epochs`` an epoch is only a fallback:
    the first epoch from ``min_epochs`` on replaces it whatever its score, so a lucky early
    epoch (a barely trained model that happens to score well on a small split) never wins."""
    metric = val.acc if config.monitor == "val_acc" else val.mean_loss
    if math.isnan(metric):
        return False
    best = state.best_metric
    if best is None or (epoch >= config.min_epochs > state.best_epoch):
        return True
    if config.monitor == "val_acc":
        return metric > best + config.min_delta
    return metric < best - config.min_delta


def _record(
    parts: Parts, state: LoopState, epoch: int, train: EpochStats, val: EpochStats
) -> EpochEnd:
    is_best = improved(parts.config, state, epoch, val)
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


def _early_stop(config: TrainConfig, state: LoopState) -> str:
    if state.epoch >= config.min_epochs and state.stale_epochs >= config.patience:
        return f"early stopping: {config.monitor} did not improve for {config.patience} epochs"
    return ""


def train(config: TrainConfig, resume: bool = False) -> dict[str, object]:
    """Run training to the end without progress reporting; returns the summary."""
    summary: dict[str, object] = {}
    for event in run_training(config, resume=resume):
        if isinstance(event, Finished):
            summary = event.summary
    return summary
