"""Backbone outputs computed once and cached on disk: the features a head trains on (probe,
MLP head) and the activations before the last blocks (partial fine-tuning).

The cache lives in ``$OIFORGE_HOME/features/<sha256>.safetensors``; the key covers the model,
its weights, the preprocessing, what is extracted (pooled features, or the input of a block,
with the augmentation, view count and seed) and every file's path, size and mtime, so an
edited dataset is recomputed and an unchanged one is read back in well under a second.

Partial mode caches ``views`` versions of every training image: view 0 is the plain
evaluation crop, views 1.. are augmented (seeded per image, so the cache does not depend on
the number of decoding processes). An epoch of partial training picks one view per image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from oiforge.atomic import write_bytes_atomic
from oiforge.errors import InvalidInputError
from oiforge.paths import oiforge_home
from oiforge.progress import EpochEnd, Event, Notice, PhaseStart, Step
from oiforge.train import ddp
from oiforge.train.config import TrainConfig
from oiforge.train.dataset import DatasetIndex, Sample, source_of
from oiforge.train.ddp import Dist, broadcast_flag, gather_to_main
from oiforge.train.heads import ROUND_ITERS, fit_probe, probabilities
from oiforge.train.images import (
    Feeder,
    activation_feeder,
    eval_transform,
    feature_feeder,
    loader_over,
    loss_weights,
    resize_size,
    train_transform,
)
from oiforge.train.models import (
    Tail,
    activations_before,
    check_train_blocks,
    extract_features,
    get_head,
    preprocessing_for,
    set_head,
    split_blocks,
)
from oiforge.train.rundir import (
    BEST_FILE,
    LoopState,
    Outcome,
    finish_run,
    write_metrics,
    write_weights,
)

log = logging.getLogger(__name__)

Extract = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FeatureSet:
    """Outputs of the decodable samples: ``x[i]`` belongs to ``samples[index[i]]``; with
    views, ``x`` is (samples, views, ...)."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    bad: list[int]


@dataclass(frozen=True)
class Extraction:
    """What to compute per image: ``what`` names it in the cache key."""

    model_id: str
    what: str
    extract: Extract
    dtype: torch.dtype = torch.float32


def feature_extraction(model: nn.Module, model_id: str) -> Extraction:
    """Pooled pre-logit features (what the classifier head sees)."""
    return Extraction(model_id, "head-input", lambda x: extract_features(model, x))


def activation_extraction(model: nn.Module, model_id: str, unit: nn.Module, cut: int) -> Extraction:
    """The input of block ``cut`` (stored as float16: half the memory, ample precision)."""
    return Extraction(
        model_id,
        f"block-input-{cut}",
        lambda x: activations_before(model, unit, x),
        torch.float16,
    )


def cache_key(
    model_id: str, preprocessing: dict[str, Any], samples: Sequence[Sample], extra: object = ""
) -> str:
    """A digest of everything the cached tensors depend on."""
    digest = hashlib.sha256(json.dumps([model_id, preprocessing, extra], sort_keys=True).encode())
    for s in samples:
        st = Path(s.path).stat()
        where = f"{s.offset}\0{s.size}" + (f"\0row {s.row}" if s.row >= 0 else "")
        digest.update(f"{s.path}\0{where}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        digest.update(f"{s.label_key}\n".encode())
    return digest.hexdigest()


def features_dir() -> Path:
    return oiforge_home() / "features"


def load_cached(key: str) -> FeatureSet | None:
    path = features_dir() / f"{key}.safetensors"
    if not path.is_file():
        return None
    try:
        t = load_file(str(path))
    except (OSError, ValueError, RuntimeError):
        log.warning("ignoring an unreadable feature cache %s", path)
        return None
    return FeatureSet(t["x"], t["y"], t["index"], [int(i) for i in t["bad"].tolist()])


def store_cached(key: str, fs: FeatureSet) -> None:
    bad = torch.tensor(fs.bad, dtype=torch.long)
    blob = save({"x": fs.x.contiguous(), "y": fs.y, "index": fs.index, "bad": bad})
    write_bytes_atomic(features_dir() / f"{key}.safetensors", blob)


@dataclass(frozen=True)
class Views:
    """How many versions of each image: view 0 plain, the others augmented with ``augment``."""

    count: int = 1
    augment: str = "none"
    seed: int = 0


def _key(
    extraction: Extraction, preprocessing: dict[str, Any], samples: Sequence[Sample], views: Views
) -> str:
    extra = [extraction.what, views.count, views.augment, views.seed] if views.count > 1 else ""
    return cache_key(f"{extraction.model_id}|{extraction.what}", preprocessing, samples, extra)


def compute_outputs(
    extraction: Extraction,
    samples: Sequence[Sample],
    preprocessing: dict[str, Any],
    *,
    batch_size: int,
    workers: int,
    device: torch.device,
    phase: str,
    views: Views = Views(),
) -> Generator[Event, None, FeatureSet]:
    """``extraction``'s output for every sample (and view), cached; yields progress."""
    key = _key(extraction, preprocessing, samples, views)
    cached = load_cached(key)
    if cached is not None:
        return cached
    size = resize_size(int(preprocessing["size"]), float(preprocessing["crop_pct"]))
    per_view: list[FeatureSet] = []
    for view in range(views.count):
        if view == 0:
            transform = eval_transform(preprocessing)
        else:
            transform = train_transform(preprocessing, views.augment)
        seed = views.seed * 1_000_003 + view * 10_007
        loader = loader_over(samples, transform, size, batch_size, workers, seed=seed)
        name = phase if views.count == 1 else f"{phase} (view {view + 1}/{views.count})"
        fs = yield from _run_loader(extraction, loader, device, name)
        per_view.append(fs)
    fs = per_view[0]
    if views.count > 1 and len(fs.y):
        fs = FeatureSet(torch.stack([v.x for v in per_view], 1), fs.y, fs.index, fs.bad)
    store_cached(key, fs)
    return fs


def _run_loader(
    extraction: Extraction, loader: Iterable[Any], device: torch.device, phase: str
) -> Generator[Event, None, FeatureSet]:
    yield PhaseStart(phase, len(loader))  # type: ignore[arg-type]
    xs, ys, idx, bad = [], [], [], []
    with torch.no_grad():
        for i, (x, y, index, bad_batch) in enumerate(loader):
            bad += bad_batch
            if len(y):
                xs.append(extraction.extract(x.to(device)).to(extraction.dtype).cpu())
                ys.append(y)
                idx.append(index)
            yield Step(phase, i + 1)
    if not xs:
        return FeatureSet(torch.empty(0, 0), torch.empty(0, dtype=torch.long), torch.empty(0), bad)
    return FeatureSet(torch.cat(xs), torch.cat(ys), torch.cat(idx), bad)


def compute_features_sharded(
    d: Dist,
    extraction: Extraction,
    samples: Sequence[Sample],
    preprocessing: dict[str, Any],
    **kw: Any,
) -> Generator[Event, None, FeatureSet | None]:
    """Several ranks: each computes the outputs of every ``world``-th sample; rank 0 gathers
    them into the full set (cached under the full set's key) and returns it; others get None.
    """
    if not d.active:
        return (yield from compute_outputs(extraction, samples, preprocessing, **kw))
    key = _key(extraction, preprocessing, samples, kw.get("views", Views()))
    cached = load_cached(key) if d.is_main else None
    if broadcast_flag(d, cached is not None, kw["device"]):
        return cached
    mine = yield from compute_outputs(extraction, samples[d.rank :: d.world], preprocessing, **kw)
    parts = gather_to_main(d, mine)
    if not d.is_main:
        return None
    full = merge_shards(parts)
    store_cached(key, full)
    return full


def merge_shards(parts: Sequence[FeatureSet]) -> FeatureSet:
    """Rank ``r``'s local index ``i`` is sample ``r + world * i``; rows back in sample order."""
    world = len(parts)
    xs, ys, idx, bad = [], [], [], []
    for rank, fs in enumerate(parts):
        bad += [rank + world * i for i in fs.bad]
        if len(fs.y):
            xs.append(fs.x)
            ys.append(fs.y)
            idx.append(rank + world * fs.index.long())
    bad.sort()
    if not xs:
        return FeatureSet(torch.empty(0, 0), torch.empty(0, dtype=torch.long), torch.empty(0), bad)
    index = torch.cat(idx)
    order = torch.argsort(index)
    return FeatureSet(torch.cat(xs)[order], torch.cat(ys)[order], index[order], bad)


def run_frozen(module: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """``module`` (eval mode, no gradients) over cached inputs, in float32, batch by batch."""
    module.eval()
    with torch.no_grad():
        return torch.cat([module(x[i : i + batch].float()) for i in range(0, len(x), batch)])


def tail_features(tail: Tail, x: torch.Tensor) -> torch.Tensor:
    """Pooled features of cached activations through the (frozen) tail: what the head sees."""
    head = get_head(tail.model)
    set_head(tail.model, nn.Identity())
    try:
        return run_frozen(tail, x)
    finally:
        set_head(tail.model, head)


def groups_of(samples: Sequence[Sample], fs: FeatureSet) -> list[str]:
    """The source photo of every cached row (cross-validation keeps a photo's crops together)."""
    return [source_of(samples[int(i)]) for i in fs.index.tolist()]


def start_from_probe(
    tail: Tail, train: FeatureSet, val: FeatureSet, groups: Sequence[str], *, views: int,
    balance: str, seed: int, rounds: int,
) -> Generator[Event, None, None]:  # fmt: skip
    """LP-FT: the head starts as the linear probe on the frozen tail's features (of the plain
    view), so fine-tuning the blocks starts from a good head instead of a random one."""
    head = get_head(tail.model)
    if not isinstance(head, nn.Linear):
        return
    plain = train.x[:, 0] if views > 1 else train.x
    feats, val_feats = tail_features(tail, plain), tail_features(tail, val.x)
    weights = loss_weights(train.y, head.out_features, balance)
    fitting = fit_probe(
        feats, train.y, groups, val_feats, val.y, class_weight=weights, seed=seed,
        max_rounds=rounds,
    )  # fmt: skip
    while True:  # its progress bars, not its rows: they are not this run's epochs
        try:
            event = next(fitting)
        except StopIteration as stop:
            result = stop.value
            break
        if not isinstance(event, EpochEnd):
            yield event
    with torch.no_grad():
        head.weight.copy_(result.weight)
        head.bias.copy_(result.bias)


# --- what the cached modes train on ---------------------------------------------------------


@dataclass(frozen=True)
class CachedInputs:
    """What the epoch loop trains on in the cached modes: batches of cached outputs, the
    backbone parameters that train (partial's blocks), the module that runs on the cached
    inputs (a head, or partial's tail) and the training labels."""

    feeder: Feeder
    backbone: list[nn.Parameter]
    module: nn.Module
    labels: torch.Tensor  # classes, or (N, C) multi-label targets


def _model_id(config: TrainConfig) -> str:
    return f"{config.model}|pretrained={config.pretrained}"


def probe_features_cached(config: TrainConfig, index: DatasetIndex) -> bool:
    """Whether the probe's training features are in the cache already (then a probe run
    says nothing about how long forward passes take here)."""
    preprocessing = preprocessing_for(config.model, config.image_size, config.crop_pct)
    model_id = _model_id(config) + "|head-input"
    key = cache_key(f"{model_id}|head-input", dict(preprocessing), index.splits["train"])
    return (features_dir() / f"{key}.safetensors").is_file()


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


def train_linear_probe(
    config: TrainConfig,
    index: DatasetIndex,
    model: nn.Module,
    preprocessing: dict[str, Any],
    device: torch.device,
) -> Generator[Event, None, Outcome | None]:
    """The linear probe (``heads.py``) on cached features; each L-BFGS round is a row of
    metrics.csv. None on ranks other than 0 (they only shared the forward passes)."""
    model.eval()
    extraction = feature_extraction(model, _model_id(config) + "|head-input")
    sets = yield from _cached(config, index, extraction, preprocessing, device)
    if sets is None:
        return None
    _note_no_augmentation(config)
    train, val, head = sets["train"], sets["val"], get_head(model)
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
    return finish_run(config, state, stopped, probs, val.y, extra)


def cached_inputs(
    config: TrainConfig,
    index: DatasetIndex,
    model: nn.Module,
    preprocessing: dict[str, Any],
    device: torch.device,
) -> Generator[Event, None, CachedInputs | None]:
    """The MLP head's features, or partial's block inputs (LP-FT: its head starts as the
    linear probe on the frozen tail's features); None on ranks other than 0."""
    model.eval()
    if config.mode == "probe":
        extraction = feature_extraction(model, _model_id(config) + "|head-input")
        sets = yield from _cached(config, index, extraction, preprocessing, device)
        if sets is None:
            return None
        _note_no_augmentation(config)
        train, val = sets["train"], sets["val"]
        feeder = feature_feeder(
            train, val, batch_size=config.batch_size, num_classes=config.num_classes,
            balance=config.balance, seed=config.seed,
        )  # fmt: skip
        return CachedInputs(feeder, [], get_head(model), train.y)
    return (yield from _partial_inputs(config, index, model, preprocessing, device))


def _note_no_augmentation(config: TrainConfig) -> None:
    if config.augment != "none":
        log.info(
            "probe mode trains on cached features: augmentation %r not applied", config.augment
        )


def _partial_inputs(
    config: TrainConfig,
    index: DatasetIndex,
    model: nn.Module,
    preprocessing: dict[str, Any],
    device: torch.device,
) -> Generator[Event, None, CachedInputs | None]:
    split = split_blocks(model, config.model)
    cut = check_train_blocks(split, config.train_blocks, config.model)
    extraction = activation_extraction(model, _model_id(config), split.units[cut], cut)
    views = Views(config.views, config.augment, config.seed)
    sets = yield from _cached(config, index, extraction, preprocessing, device, views)
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
    head_ids = {id(p) for p in get_head(model).parameters()}
    blocks = [p for p in tail.trainable() if id(p) not in head_ids]
    return CachedInputs(feeder, blocks, tail, train.y)
