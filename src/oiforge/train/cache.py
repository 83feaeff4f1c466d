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
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from oiforge.atomic import write_bytes_atomic
from oiforge.paths import oiforge_home
from oiforge.train.dataset import Sample, source_of
from oiforge.train.ddp import Dist, broadcast_flag, gather_to_main
from oiforge.train.events import EpochEnd, Event, PhaseStart, Step
from oiforge.train.heads import fit_probe
from oiforge.train.images import (
    Feeder,
    Inputs,
    epoch_generator,
    epoch_order,
    eval_transform,
    loader_over,
    loss_weights,
    resize_size,
    train_transform,
)
from oiforge.train.models import Tail, activations_before, extract_features, get_head, set_head

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
        digest.update(f"{s.path}\0{s.offset}\0{s.size}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
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


def activation_feeder(
    train: FeatureSet,
    val: FeatureSet,
    views: int,
    *,
    batch_size: int,
    num_classes: int,
    balance: str,
    seed: int,
) -> Feeder:
    """Batches of cached activations: each epoch takes one seeded-random view per image
    (``train.x`` is (images, views, ...) when ``views`` > 1)."""
    labels = train.y

    def train_batches(epoch: int) -> Iterable[Inputs]:
        gen = epoch_generator(seed, epoch)
        order = torch.tensor(epoch_order(labels, num_classes, balance, gen))
        pick = torch.randint(views, (len(order),), generator=gen)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            x = train.x[idx, pick[i : i + batch_size]] if views > 1 else train.x[idx]
            yield x.float(), train.y[idx], []

    def val_batches() -> Iterable[Inputs]:
        for i in range(0, len(val.y), batch_size * 4):
            yield val.x[i : i + batch_size * 4].float(), val.y[i : i + batch_size * 4], []

    steps = max(1, -(-len(labels) // batch_size))
    shape = tuple(train.x.shape[2:] if views > 1 else train.x.shape[1:])
    return Feeder(train_batches, val_batches, steps, shape)


def groups_of(samples: Sequence[Sample], fs: FeatureSet) -> list[str]:
    """The source photo of every cached row (cross-validation keeps a photo's crops together)."""
    return [source_of(samples[int(i)]) for i in fs.index.tolist()]


def feature_feeder(
    train: FeatureSet, val: FeatureSet, *, batch_size: int, num_classes: int, balance: str,
    seed: int,
) -> Feeder:  # fmt: skip
    """Batches of cached features (the MLP head), seeded by (seed, epoch)."""
    labels = train.y
    bs = batch_size

    def train_batches(epoch: int) -> Iterable[Inputs]:
        gen = epoch_generator(seed, epoch)
        order = torch.tensor(epoch_order(labels, num_classes, balance, gen))
        for i in range(0, len(order), bs):
            idx = order[i : i + bs]
            yield train.x[idx], train.y[idx], []

    def val_batches() -> Iterable[Inputs]:
        for i in range(0, len(val.y), bs * 8):
            yield val.x[i : i + bs * 8], val.y[i : i + bs * 8], []

    steps = max(1, -(-len(labels) // bs))
    return Feeder(train_batches, val_batches, steps, tuple(train.x.shape[1:]))


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
