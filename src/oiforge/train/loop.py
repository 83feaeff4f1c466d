"""``run_training``: the training loop, read top to bottom.

1. Setup: the dataset's index, the resolved config, the run directory, the device.
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
3. The optimizer (AdamW, backbone and head groups), the loss (cross-entropy with label
   smoothing and optional class weights; multi-label: binary cross-entropy or the asymmetric
   loss over the verified labels only, optional positive weights), the learning-rate
   schedule.
4. The epoch loop: train, validate, keep the best (``--monitor``, never before
   ``--min-epochs`` unless nothing better exists), checkpoint, stop early or on a budget.

A resumed run reproduces an uninterrupted one (same seed, CPU). Under torchrun every rank
runs this; rank 0 alone writes the run directory (see ``ddp.py``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from oiforge.errors import InvalidInputError, StageError, UserError
from oiforge.train import ddp
from oiforge.train.cache import (
    FeatureSet,
    Views,
    activation_extraction,
    activation_feeder,
    compute_features_sharded,
    feature_extraction,
    feature_feeder,
    groups_of,
    run_frozen,
    start_from_probe,
)
from oiforge.train.config import DEFAULT_MODEL, SCRATCH_MODEL, TrainConfig
from oiforge.train.dataset import UNKNOWN, DatasetIndex, open_dataset
from oiforge.train.ddp import Dist, all_reduce_sums, any_rank, gather_lists, wrap
from oiforge.train.events import EpochEnd, Event, Finished, Notice, PhaseStart, Step
from oiforge.train.heads import (
    ROUND_ITERS,
    MultiLabelLoss,
    choose_thresholds,
    fit_probe,
    hits,
    mean_average_precision,
    probabilities,
)
from oiforge.train.images import (
    Feeder,
    FeedOptions,
    Inputs,
    class_weights,
    describe_survey,
    image_feeder,
    loss_weights,
    positive_weights,
    survey_inputs,
    targets_of,
)
from oiforge.train.models import (
    Tail,
    backbone_parameters,
    check_train_blocks,
    get_head,
    preprocessing_for,
    split_blocks,
)
from oiforge.train.rundir import (
    BEST_FILE,
    CHECKPOINT_FILE,
    CURVES_FILE,
    SUMMARY_FILE,
    LoopState,
    build_model,
    load_checkpoint,
    plot_curves,
    prepare_run_dir,
    save_checkpoint,
    set_thresholds,
    write_config,
    write_json,
    write_labels,
    write_metrics,
    write_weights,
)

log = logging.getLogger(__name__)

#: Peak learning rates per mode (AdamW). probe: the MLP head's (a linear probe uses L-BFGS);
#: partial: blocks and head alike, 10x below finetune's head, because its head starts from the
#: fitted probe (LP-FT) and a large first step would undo it.
DEFAULT_LR = {"probe": 1e-3, "partial": 1e-4, "finetune": 1e-3, "scratch": 3e-3}
#: Steps between host syncs (progress event, finite-loss check, stop check).
SYNC_EVERY = 8


class NonFiniteLossError(StageError):
    """The loss became NaN or infinite."""


class OutOfMemoryError(UserError):
    """The accelerator ran out of memory; a smaller batch is the usual fix."""


@dataclass(frozen=True)
class Outcome:
    """What one training run ends with: its summary and the best model's validation
    probabilities (rows in the order of the decodable validation samples)."""

    summary: dict[str, Any]
    val_probs: torch.Tensor
    val_labels: torch.Tensor


# --- 1. setup ----------------------------------------------------------------------------


def resolve_config(config: TrainConfig, index: DatasetIndex) -> TrainConfig:
    """Fill in what the dataset and the mode decide."""
    changes: dict[str, object] = {"num_classes": len(index.classes), "task": index.task}
    if not index.multilabel and config.loss != "bce":
        raise InvalidInputError(
            f"--loss {config.loss} is for multi-label datasets; {index.root} is single-label "
            "(it trains with cross-entropy)"
        )
    if config.lr is None and config.mode != "auto":  # auto: per candidate (auto.py)
        changes["lr"] = DEFAULT_LR[config.mode]
    if config.mode == "scratch":
        changes["pretrained"] = False
        if config.model == DEFAULT_MODEL:
            changes["model"] = SCRATCH_MODEL
    elif config.model == SCRATCH_MODEL:
        raise InvalidInputError(f"{SCRATCH_MODEL} has no pretrained weights: use --mode scratch")
    if config.mode == "auto" and config.max_minutes is None:
        from oiforge.train.auto import default_minutes

        changes["max_minutes"] = default_minutes()
    return config.replace(**changes)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InvalidInputError(f"unknown device {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("--device cuda asked for, but no CUDA device is available")
    return device


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


def dataset_notices(index: DatasetIndex) -> Iterator[Notice]:
    """The dataset's own notes, and a count of the unusual inputs that get converted."""
    for note in index.notes:
        yield Notice("warning", note)
    samples = index.splits["train"] + index.splits["val"]
    line = describe_survey(survey_inputs(samples), len(samples))
    if line:
        yield Notice("info", f"inputs: {line}")


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
    ``val_probs``: also return the best model's validation probabilities (auto compares them)."""
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    preprocessing = preprocessing_for(config.model, config.image_size, config.crop_pct)
    run = Path(config.out)
    if d.is_main:
        write_config(run, config)
        write_labels(run, index.classes, preprocessing, config.task)
    model = build_model(config, pretrained=config.pretrained).to(device)
    setup = Setup(config, index, model, preprocessing, device, has_checkpoint, val_probs, d)
    if config.mode == "probe":
        return (yield from _train_probe(setup))
    if config.mode == "partial":
        return (yield from _train_partial(setup))
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
    """One run's fixed parts, handed to the preparation of its mode."""

    config: TrainConfig
    index: DatasetIndex
    model: nn.Module
    preprocessing: dict[str, Any]
    device: torch.device
    has_checkpoint: bool
    val_probs: bool
    d: Dist


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
    parts = Parts(s.config, s.model, feeder, optimizer, s.device, loss_fn, d, module=module)
    return (yield from fit(parts, state or LoopState(), s.val_probs))


def _feed_options(config: TrainConfig) -> FeedOptions:
    return FeedOptions(
        config.image_size, config.crop_pct, config.augment, config.balance,
        config.num_classes, config.batch_size, config.workers, config.seed,
    )  # fmt: skip


def _model_id(config: TrainConfig) -> str:
    return f"{config.model}|pretrained={config.pretrained}"


def _cached(
    config: TrainConfig,
    index: DatasetIndex,
    extraction: Any,
    preprocessing: dict[str, Any],
    device: torch.device,
    views: Views = Views(),
) -> Generator[Event, None, dict[str, FeatureSet] | None]:
    """Cached outputs of train (with ``views``) and val, sharded over the ranks; None on
    ranks other than 0."""
    d, sets = ddp.current(), {}
    for split in ("train", "val"):
        fs = yield from compute_features_sharded(
            d, extraction, index.splits[split], dict(preprocessing),
            batch_size=max(config.batch_size, 64), workers=config.workers, device=device,
            phase=f"{extraction.what} {split}", views=views if split == "train" else Views(),
        )  # fmt: skip
        if fs is None:
            continue
        sets[split] = fs
        if fs.bad:
            yield Notice("warning", f"{len(fs.bad)} {split} images could not be decoded: skipped")
    if not d.is_main:
        return None
    if len(sets["train"].y) == 0:
        raise InvalidInputError(f"no decodable training images in {index.root}")
    return sets


def _train_probe(s: Setup) -> Generator[Event, None, Outcome | None]:
    config, index, model, preprocessing, device = (
        s.config, s.index, s.model, s.preprocessing, s.device,
    )  # fmt: skip
    model.eval()
    extraction = feature_extraction(model, _model_id(config) + "|head-input")
    sets = yield from _cached(config, index, extraction, preprocessing, device)
    if sets is None:
        return None
    train, val = sets["train"], sets["val"]
    if config.augment != "none":
        log.info(
            "probe mode trains on cached features: augmentation %r not applied", config.augment
        )
    head = get_head(model)
    if config.head == "linear":
        return (yield from _fit_linear(config, index, model, head, train, val))
    feeder = feature_feeder(
        train, val, batch_size=config.batch_size, num_classes=config.num_classes,
        balance=config.balance, seed=config.seed,
    )  # fmt: skip
    return (yield from _fit(s, feeder, [], train.y, module=head))


def _fit_linear(
    config: TrainConfig,
    index: DatasetIndex,
    model: nn.Module,
    head: nn.Module,
    train: FeatureSet,
    val: FeatureSet,
) -> Generator[Event, None, Outcome]:
    """The linear probe (``heads.py``): each L-BFGS round is a row of metrics.csv."""
    started, run, history = time.monotonic(), Path(config.out), []
    weights = loss_weights(train.y, config.num_classes, config.balance)
    fitting = fit_probe(
        train.x, train.y, groups_of(index.splits["train"], train), val.x, val.y,
        class_weight=weights, seed=config.seed, max_rounds=config.epochs,
    )  # fmt: skip
    while True:
        try:
            event = next(fitting)
        except StopIteration as stop:
            result = stop.value
            break
        if isinstance(event, EpochEnd):
            history.append({**event.row, "seconds": round(time.monotonic() - started, 3)})
            write_metrics(run, history)
        yield event
    if result.note:
        yield Notice("info", result.note)
    with torch.no_grad():
        assert isinstance(head, nn.Linear)
        head.weight.copy_(result.weight)
        head.bias.copy_(result.bias)
    write_weights(run / BEST_FILE, model)
    state = LoopState(epoch=len(history), best_epoch=len(history), history=history)
    state.elapsed_s = time.monotonic() - started
    extra = {"probe_C": result.c, "probe_cv_folds": result.folds, "probe_cv": result.cv}
    probs = probabilities(run_frozen(head, val.x), val.y.dim() == 2)
    converged = bool(history) and history[-1]["lbfgs_iters"] < ROUND_ITERS
    stopped = "converged" if converged else f"not converged in {config.epochs} L-BFGS rounds"
    return _finish(config, Path(config.out), state, stopped, probs, val.y, extra)


def _train_partial(s: Setup) -> Generator[Event, None, Outcome | None]:
    config, index, model = s.config, s.index, s.model
    model.eval()
    split = split_blocks(model, config.model)
    cut = check_train_blocks(split, config.train_blocks, config.model)
    extraction = activation_extraction(model, _model_id(config), split.units[cut], cut)
    views = Views(config.views, config.augment, config.seed)
    sets = yield from _cached(config, index, extraction, s.preprocessing, s.device, views)
    if sets is None:
        return None
    train, val = sets["train"], sets["val"]
    tail = Tail(model, split, cut)
    yield from start_from_probe(
        tail, train, val, groups_of(index.splits["train"], train), views=config.views,
        balance=config.balance, seed=config.seed, rounds=config.epochs,
    )  # fmt: skip
    feeder = activation_feeder(
        train, val, config.views, batch_size=config.batch_size,
        num_classes=config.num_classes, balance=config.balance, seed=config.seed,
    )  # fmt: skip
    head = get_head(model)
    head_ids = {id(p) for p in head.parameters()}
    blocks = [p for p in tail.trainable() if id(p) not in head_ids]
    return (yield from _fit(s, feeder, blocks, train.y, module=tail))


# --- 3. optimizer, loss, learning-rate schedule -----------------------------------------


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
    wrapped: dict[bool, nn.Module] = field(default_factory=dict)  # DDP wrapper per phase

    @property
    def run_dir(self) -> Path:
        return Path(self.config.out)


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


def fit(parts: Parts, state: LoopState, val_probs: bool = False) -> Generator[Event, None, Outcome]:
    """Epochs from ``state.epoch + 1``; yields progress; finishes with the best model restored
    (and, with ``val_probs``, its validation probabilities). Every rank runs this; only rank 0
    writes files."""
    config, feeder = parts.config, parts.feeder
    deadline = Deadline(
        already_s=state.elapsed_s, max_minutes=config.max_minutes,
        budget_usd=config.budget_usd, usd_per_hour=config.usd_per_hour,
    )  # fmt: skip
    val_ctx = _context(parts, parts.module or parts.model, validation_loss(config), deadline)
    stopped = ""
    for epoch in range(state.epoch + 1, config.epochs + 1):
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
    probs, labels = _val_probabilities(val_ctx, wanted)
    if multilabel:
        probs, labels = ddp.gather_rows(parts.d, probs, labels)
    return _finish(config, parts.run_dir, state, stopped or "completed", probs, labels, {}, parts.d)


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


def _autocast(ctx: StepContext) -> AbstractContextManager[object]:
    if ctx.amp_dtype is None:
        return nullcontext()
    return torch.autocast(ctx.device.type, dtype=ctx.amp_dtype)


def _to_device(ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
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
    x, y = _to_device(ctx, x, y)
    with _autocast(ctx):
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
    when ``should_stop`` (asked at those batches, the same on every rank) says why."""
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
        xd, yd = _to_device(ctx, x, y)
        with _autocast(ctx):
            logits = ctx.module(xd).float()
        running.add(ctx.loss_fn(logits, yd) * len(y), *hits(logits, yd))
        stats.seen += len(y)
    running.flush(stats, check=False)
    return stats


@torch.no_grad()
def _val_probabilities(
    ctx: StepContext, batches: Iterable[Inputs]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (restored best) model's class probabilities on this rank's validation samples."""
    ctx.module.eval()
    probs, labels = [], []
    for x, y, _bad in batches:
        if len(y):
            xd, _ = _to_device(ctx, x, y)
            with _autocast(ctx):
                probs.append(probabilities(ctx.module(xd).float(), bool(ctx.labels_width)).cpu())
            labels.append(y)
    if not probs:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
    return torch.cat(probs), torch.cat(labels)


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


def _finish(
    config: TrainConfig,
    run: Path,
    state: LoopState,
    stopped: str,
    val_probs: torch.Tensor,
    val_labels: torch.Tensor,
    extra: dict[str, Any],
    d: Dist = Dist(),
) -> Outcome:
    if d.is_main:
        plot_curves(state.history, run / CURVES_FILE)
    if config.task == "multilabel":
        extra = {**extra, **_label_thresholds(run, val_probs, val_labels, d)}
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
    if d.is_main:
        write_json(run / SUMMARY_FILE, summary)
    return Outcome(summary, val_probs, val_labels)


def _label_thresholds(
    run: Path, probs: torch.Tensor, targets: torch.Tensor, d: Dist
) -> dict[str, Any]:
    """Multi-label: the best model's validation mAP, and its per-class thresholds at the best
    validation F1, written to labels.json (``oiforge evaluate`` chooses them again)."""
    if not len(targets):
        return {"best_val_map": None}
    p, t = probs.numpy(), targets.numpy()
    if d.is_main:
        set_thresholds(run, choose_thresholds(p, t)[0])
    value = mean_average_precision(p, t)
    return {"best_val_map": None if math.isnan(value) else round(value, 6)}


def train(config: TrainConfig, resume: bool = False) -> dict[str, object]:
    """Run training to the end without progress reporting; returns the summary."""
    summary: dict[str, object] = {}
    for event in run_training(config, resume=resume):
        if isinstance(event, Finished):
            summary = event.summary
    return summary
