"""Batches per epoch (images or cached features), seeded by (seed, epoch) so a resumed run
sees exactly the batches an uninterrupted one would; class balance; loss; optimizer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, WeightedRandomSampler

from oiforge.train.config import TrainConfig
from oiforge.train.dataset import Sample
from oiforge.train.ddp import Dist
from oiforge.train.features import FeatureSet
from oiforge.train.images import (
    ImageDataset,
    collate,
    eval_transform,
    resize_size,
    seed_worker,
    train_transform,
)
from oiforge.train.loop import Inputs
from oiforge.train.models import backbone_parameters, get_head


@dataclass(frozen=True)
class Feeder:
    """Training batches for an epoch, validation batches, and the batch count per epoch."""

    train: Callable[[int], Iterable[Inputs]]
    val: Callable[[], Iterable[Inputs]]
    steps_per_epoch: int
    sample_shape: tuple[int, ...]  # one input (C, H, W or the feature size)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def class_weights(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, mean 1 over the classes present."""
    counts = torch.bincount(torch.tensor(list(labels), dtype=torch.long), minlength=num_classes)
    weights = torch.where(counts > 0, len(labels) / (num_classes * counts.clamp(min=1)), 0.0)
    return weights.float()


def _balanced_sampler(
    labels: Sequence[int], num_classes: int, gen: torch.Generator
) -> Sampler[int]:
    per_class = class_weights(labels, num_classes)
    weights = per_class[torch.tensor(list(labels), dtype=torch.long)].double()
    return WeightedRandomSampler(weights.tolist(), len(labels), replacement=True, generator=gen)


def _order(labels: Sequence[int], config: TrainConfig, gen: torch.Generator) -> list[int]:
    if config.balance == "sampler":
        return list(_balanced_sampler(labels, config.num_classes, gen))
    return torch.randperm(len(labels), generator=gen).tolist()


def _unpack(loader: Iterable[Any]) -> Iterator[Inputs]:
    for images, labels, _indexes, bad in loader:
        yield images, labels, bad


def _rank_order(order: list[int], d: Dist, epoch: int) -> list[int]:
    """This rank's equal share of an epoch's order (DistributedSampler: pads, then strides)."""
    if not d.active:
        return order
    positions = cast("Dataset[int]", order)  # it only needs len()
    sampler: DistributedSampler[int] = DistributedSampler(positions, d.world, d.rank, shuffle=False)
    sampler.set_epoch(epoch)
    return [order[i] for i in sampler]


def image_feeder(
    config: TrainConfig,
    train: Sequence[Sample],
    val: Sequence[Sample],
    preprocessing: dict[str, Any],
    pin_memory: bool = False,
    d: Dist = Dist(),
) -> Feeder:
    """DataLoaders over image files (decoded in ``config.workers`` processes).

    Several ranks: each trains on its DistributedSampler share of the epoch's (seeded,
    possibly class-balanced) order and validates on every ``world``-th image, no padding.
    """
    size = resize_size(config.image_size, config.crop_pct)
    train_set = ImageDataset(train, train_transform(preprocessing, config.augment), size)
    val_set = ImageDataset(val[d.rank :: d.world], eval_transform(preprocessing), size)
    labels = [s.label for s in train]
    per_rank = -(-len(train) // d.world)
    drop_last = per_rank > config.batch_size  # a batch of 1 breaks BatchNorm
    common: dict[str, Any] = {
        "batch_size": config.batch_size,
        "num_workers": config.workers,
        "collate_fn": collate,
        "pin_memory": pin_memory,
        "worker_init_fn": seed_worker,
        "persistent_workers": False,
    }

    def train_batches(epoch: int) -> Iterable[Inputs]:
        gen = epoch_generator(config.seed, epoch)
        order = _rank_order(_order(labels, config, gen), d, epoch)
        if d.rank:  # distinct augmentation streams per rank; rank 0 = a single-process run
            gen = epoch_generator(config.seed + 7919 * d.rank, epoch)
        return _unpack(
            DataLoader(train_set, sampler=order, drop_last=drop_last, generator=gen, **common)
        )

    def val_batches() -> Iterable[Inputs]:
        return _unpack(DataLoader(val_set, shuffle=False, **common))

    steps = per_rank // config.batch_size if drop_last else 1
    return Feeder(train_batches, val_batches, steps, (3, config.image_size, config.image_size))


def feature_feeder(config: TrainConfig, train: FeatureSet, val: FeatureSet) -> Feeder:
    """Batches of cached features (probe mode)."""
    labels = train.y.tolist()
    bs = config.batch_size

    def train_batches(epoch: int) -> Iterable[Inputs]:
        order = torch.tensor(_order(labels, config, epoch_generator(config.seed, epoch)))
        for i in range(0, len(order), bs):
            idx = order[i : i + bs]
            yield train.x[idx], train.y[idx], []

    def val_batches() -> Iterable[Inputs]:
        for i in range(0, len(val.y), bs * 8):
            yield val.x[i : i + bs * 8], val.y[i : i + bs * 8], []

    steps = max(1, -(-len(labels) // bs))
    return Feeder(train_batches, val_batches, steps, tuple(train.x.shape[1:]))


def create_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with two groups: backbone (index 0) and head (index 1); probe trains the head only."""
    head = list(get_head(model).parameters())
    backbone = [] if config.mode == "probe" else list(backbone_parameters(model))
    lr = float(config.lr or 0.0)
    groups: list[dict[str, Any]] = [{"params": backbone, "lr": 0.0}, {"params": head, "lr": lr}]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=config.weight_decay)


def create_loss(config: TrainConfig, labels: Sequence[int]) -> nn.Module:
    weight = class_weights(labels, config.num_classes) if config.balance == "weights" else None
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
