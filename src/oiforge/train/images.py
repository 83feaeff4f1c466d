"""The data pipeline: decoding, augmentation presets, and the batches of every epoch.

Decoding uses Pillow's draft mode (DCT-scaled JPEG decode) and :func:`oiforge.pixels.to_rgb`
(16-bit, transparency, CMYK, palette: the same conversion serve uses). A sample that fails to
decode is returned as ``None`` and dropped by :func:`collate`, which reports its index so the
trainer can count and warn: one bad file never stops a run. Batches are seeded by (seed,
epoch), so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import io
import logging
import random
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, WeightedRandomSampler
from torchvision.transforms import v2

from oiforge.contracts.parquet_images import row_groups_cached
from oiforge.orientation import upright
from oiforge.pixels import input_kinds, to_rgb
from oiforge.progress import Notice
from oiforge.train.dataset import DatasetIndex, Sample
from oiforge.train.ddp import Dist

if TYPE_CHECKING:
    from oiforge.train.cache import FeatureSet

log = logging.getLogger(__name__)

Transform = Callable[[Image.Image], torch.Tensor]
Target = int | tuple[float, ...]  # a class, or one POSITIVE/NEGATIVE/UNKNOWN per class
Item = tuple[torch.Tensor | None, Target, int]
Inputs = tuple[torch.Tensor, torch.Tensor, list[int]]  # x, y, bad sample indexes
#: The largest positive weight of a rare class (``--balance weights``, multi-label): beyond
#: it, a class with a handful of positives among thousands of negatives makes steps jumpy.
MAX_POS_WEIGHT = 100.0


def decode_image(data: bytes, min_side: int) -> Image.Image:
    """Decode to RGB, upright by EXIF; JPEGs at the smallest DCT scale still >= ``min_side``."""
    img: Image.Image = Image.open(io.BytesIO(data))
    if img.format == "JPEG":
        img.draft("RGB", (min_side, min_side))
    img.load()
    rgb, _ = upright(to_rgb(img), img)
    return rgb


def survey_inputs(samples: Iterable[Sample]) -> Counter[str]:
    """How many images are greyscale, 16-bit, palette, transparent, CMYK, tiny or elongated
    (headers only: nothing is decoded); unreadable files are left to the decoder to count."""
    counts: Counter[str] = Counter()
    for sample in samples:
        try:
            source = sample.path if sample.whole_file else io.BytesIO(sample.read_bytes())
            with Image.open(source) as img:
                counts.update(input_kinds(img))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue
    return counts


def describe_survey(counts: Counter[str], total: int) -> str:
    """One line for a notice: ``3 greyscale, 1 16-bit of 120 images: converted to 8-bit RGB``."""
    if not counts:
        return ""
    parts = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    return (
        f"{parts} of {total} images: converted to 8-bit RGB (16-bit scaled, transparency on "
        "white), resized to the model's input as every image is"
    )


def resize_size(size: int, crop_pct: float) -> int:
    """The shorter side before the centre crop (timm's ``crop_pct`` convention)."""
    return max(size, int(size / crop_pct))


def eval_transform(preprocessing: dict[str, Any]) -> Transform:
    """Shorter side to ``size / crop_pct``, centre crop ``size``, scale to 0-1, normalise."""
    size = int(preprocessing["size"])
    return v2.Compose(  # type: ignore[no-any-return]
        [
            v2.PILToTensor(),
            v2.Resize(resize_size(size, float(preprocessing["crop_pct"])), antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(preprocessing["mean"], preprocessing["std"]),
        ]
    )


def train_transform(preprocessing: dict[str, Any], preset: str) -> Transform:
    """Augmentation presets: none, light, strong (TrivialAugment), randaugment."""
    if preset == "none":
        return eval_transform(preprocessing)
    size = int(preprocessing["size"])
    scale = (0.35, 1.0) if preset == "light" else (0.08, 1.0)
    pil_ops: list[Any] = [v2.RandomResizedCrop(size, scale=scale, antialias=True)]
    pil_ops.append(v2.RandomHorizontalFlip())
    if preset == "strong":
        pil_ops += [v2.ColorJitter(0.3, 0.3, 0.3), v2.TrivialAugmentWide()]
    elif preset == "randaugment":
        pil_ops += [v2.ColorJitter(0.2, 0.2, 0.2), v2.RandAugment()]
    tensor_ops: list[Any] = [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(preprocessing["mean"], preprocessing["std"]),
    ]
    if preset in ("strong", "randaugment"):
        tensor_ops.append(v2.RandomErasing(p=0.25))
    return v2.Compose([*pil_ops, v2.PILToTensor(), *tensor_ops])  # type: ignore[no-any-return]


class ImageDataset(Dataset[Item]):
    """Samples -> (tensor or None, label, index). With ``seed``, each sample's random
    augmentation is seeded by (seed, index): the same whatever process decodes it."""

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Transform,
        min_side: int,
        seed: int | None = None,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.min_side = min_side
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Item:
        sample = self.samples[index]
        try:
            image = decode_image(sample.read_bytes(), self.min_side)
            return self._transform(image, index), sample.target, index
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            log.debug("cannot decode %s: %s", sample.key, exc)
            return None, sample.target, index

    def _transform(self, image: Image.Image, index: int) -> torch.Tensor:
        if self.seed is None:
            return self.transform(image)
        state = torch.get_rng_state()
        torch.manual_seed(self.seed * 7_919 + index)
        try:
            return self.transform(image)
        finally:
            torch.set_rng_state(state)


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]


def collate(items: list[Item]) -> Batch:
    """Stack the good items; return (images, labels, indexes, bad indexes)."""
    good = [(x, y, i) for x, y, i in items if x is not None]
    bad = [i for x, _, i in items if x is None]
    if not good:
        empty = torch.empty(0)
        return empty, empty.long(), empty.long(), bad
    images = torch.stack([x for x, _, _ in good])
    labels = stack_targets([y for _, y, _ in good])
    indexes = torch.tensor([i for _, _, i in good], dtype=torch.long)
    return images, labels, indexes, bad


def seed_worker(worker_id: int) -> None:  # noqa: ARG001 (DataLoader's signature)
    """Seed Python and NumPy in a worker from torch's per-worker seed (deterministic runs)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


@dataclass(frozen=True)
class Feeder:
    """Training batches for an epoch, validation batches, and the batch count per epoch."""

    train: Callable[[int], Iterable[Inputs]]
    val: Callable[[], Iterable[Inputs]]
    steps_per_epoch: int
    sample_shape: tuple[int, ...]  # one input (C, H, W, or a cached tensor's shape)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def stack_targets(targets: Sequence[Target]) -> torch.Tensor:
    """Classes as int64 (N,); multi-label targets as float32 (N, C)."""
    if targets and isinstance(targets[0], tuple):
        return torch.tensor(targets, dtype=torch.float32)
    return torch.tensor(targets, dtype=torch.long)


def targets_of(samples: Sequence[Sample]) -> torch.Tensor:
    """The targets of ``samples`` (:func:`stack_targets`)."""
    return stack_targets([s.target for s in samples])


Labels = Sequence[int] | torch.Tensor  # classes, or (N, C) multi-label targets


def class_weights(labels: Labels, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, mean 1 over the classes present (multi-label: counts of
    verified positives)."""
    if isinstance(labels, torch.Tensor) and labels.dim() == 2:
        counts = (labels == 1).sum(0)
    else:
        counts = torch.bincount(torch.as_tensor(labels, dtype=torch.long), minlength=num_classes)
    weights = torch.where(counts > 0, len(labels) / (num_classes * counts.clamp(min=1)), 0.0)
    return weights.float()


def positive_weights(targets: torch.Tensor) -> torch.Tensor:
    """Per class, verified negatives / verified positives (BCE's ``pos_weight``: a class's
    positives then weigh as much as its negatives), within 1/:data:`MAX_POS_WEIGHT` ..
    :data:`MAX_POS_WEIGHT`; 1 for a class without both kinds."""
    pos, neg = (targets == 1).sum(0).float(), (targets == 0).sum(0).float()
    ratio = torch.where((pos > 0) & (neg > 0), neg / pos.clamp(min=1), 1.0)
    return ratio.clamp(1 / MAX_POS_WEIGHT, MAX_POS_WEIGHT)


def loss_weights(labels: Labels, num_classes: int, balance: str) -> torch.Tensor:
    """Per-class loss weights of the linear probe: inverse frequency (multi-label: positive
    weights) unless ``balance=none`` (the probe has no sampler: ``sampler`` weighs the loss
    instead, the same in expectation)."""
    if balance == "none":
        return torch.ones(num_classes)
    if isinstance(labels, torch.Tensor) and labels.dim() == 2:
        return positive_weights(labels)
    return class_weights(labels, num_classes)


def sample_weights(labels: Labels, num_classes: int) -> torch.Tensor:
    """Draw weights of ``balance=sampler``: the class's inverse frequency; multi-label, the
    largest of its verified classes' (a photo of a rare class is drawn as often as that class
    needs; 1 for a photo verified to show none)."""
    per_class = class_weights(labels, num_classes)
    if isinstance(labels, torch.Tensor) and labels.dim() == 2:
        shown = labels == 1
        best = torch.where(shown, per_class, 0.0).amax(1)
        return torch.where(shown.any(1), best, 1.0).double()
    return per_class[torch.as_tensor(labels, dtype=torch.long)].double()


def epoch_order(labels: Labels, num_classes: int, balance: str, gen: torch.Generator) -> list[int]:
    """An epoch's sample order: a permutation, or class-balanced draws (``balance=sampler``)."""
    if balance != "sampler":
        return torch.randperm(len(labels), generator=gen).tolist()
    weights = sample_weights(labels, num_classes)
    sampler: Sampler[int] = WeightedRandomSampler(
        weights.tolist(), len(labels), replacement=True, generator=gen
    )
    return list(sampler)


#: Row groups a block-shuffled epoch mixes at a time (fewer where the row-group cache holds
#: fewer): about a thousand images, WebDataset's usual shuffle buffer.
BLOCK_WINDOW = 4
Block = Hashable  # what a sample's bytes are read with (a Parquet file's row group)


def block_shuffle(
    order: Sequence[int], blocks: Sequence[Block], gen: torch.Generator, window: int
) -> list[int]:
    """``order`` (an epoch's random permutation or draws of sample indexes) block-shuffled:
    the blocks (``blocks[i]`` is sample i's) in a random order, taken ``window`` at a time;
    each window's items keep their order in ``order``, which mixes them at random already.
    Reading in this order with ``window`` blocks cached reads each block once; ``order``
    comes back unchanged when all its blocks fit in one window."""
    seen = list(dict.fromkeys(blocks[i] for i in order))
    ranks = torch.randperm(len(seen), generator=gen).tolist()
    window_of = {seen[j]: at // max(1, window) for at, j in enumerate(ranks)}
    return sorted(order, key=lambda i: window_of[blocks[i]])  # stable


def deal_blocks(order: Sequence[int], blocks: Sequence[Block], parts: int, batch: int) -> list[int]:
    """``order`` rearranged for ``parts`` DataLoader workers, which take batches in turn
    (batch j goes to worker j % ``parts``): whole blocks are dealt to the worker with the
    fewest items, each worker's items keep their order, and batch j holds worker
    j % ``parts``'s next items, so a worker reads only its own blocks (bar the last batches,
    once the workers' shares run uneven)."""
    sizes = Counter(blocks[i] for i in order)
    owner: dict[Block, int] = {}
    load = [0] * parts
    streams: list[list[int]] = [[] for _ in range(parts)]
    for i in order:
        if blocks[i] not in owner:
            owner[blocks[i]] = k = load.index(min(load))
            load[k] += sizes[blocks[i]]
        streams[owner[blocks[i]]].append(i)
    out: list[int] = []
    at = [0] * parts
    j = 0
    while at[j % parts] + batch <= len(streams[j % parts]):
        k = j % parts
        out += streams[k][at[k] : at[k] + batch]
        at[k], j = at[k] + batch, j + 1
    return out + [i for k in range(parts) for i in streams[(j + k) % parts][at[(j + k) % parts] :]]


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


def _block_order(
    order: list[int], blocks: Sequence[Block], window: int, opts: FeedOptions, d: Dist, epoch: int
) -> list[int]:
    """Parquet-backed samples: the epoch's order block-shuffled by row group, each rank a
    contiguous share of it (padded as DistributedSampler pads), dealt to the DataLoader
    workers by whole row groups."""
    gen = epoch_generator(opts.seed + 104_729, epoch)  # the DataLoader's seeds stay as they were
    order = block_shuffle(order, blocks, gen, window)
    if d.active:
        per = -(-len(order) // d.world)
        order = (order * d.world)[: per * d.world][d.rank * per : (d.rank + 1) * per]
    return deal_blocks(order, blocks, opts.workers, opts.batch_size) if opts.workers > 1 else order


@dataclass(frozen=True)
class FeedOptions:
    """What the image batches depend on besides the samples."""

    image_size: int
    crop_pct: float
    augment: str
    balance: str
    num_classes: int
    batch_size: int
    workers: int
    seed: int


def image_feeder(
    opts: FeedOptions,
    train: Sequence[Sample],
    val: Sequence[Sample],
    preprocessing: dict[str, Any],
    pin_memory: bool = False,
    d: Dist = Dist(),
) -> Feeder:
    """DataLoaders over image files (decoded in ``opts.workers`` processes).

    Several ranks: each trains on its DistributedSampler share of the epoch's (seeded,
    possibly class-balanced) order and validates on every ``world``-th image, no padding.
    Parquet-backed samples are block-shuffled (:func:`_block_order`), so a split bigger than
    the row-group cache still reads each row group once an epoch.
    """
    size = resize_size(opts.image_size, opts.crop_pct)
    train_set = ImageDataset(train, train_transform(preprocessing, opts.augment), size)
    val_set = ImageDataset(val[d.rank :: d.world], eval_transform(preprocessing), size)
    labels = targets_of(train)
    per_rank = -(-len(train) // d.world)
    drop_last = per_rank > opts.batch_size  # a batch of 1 breaks BatchNorm
    common: dict[str, Any] = {
        "batch_size": opts.batch_size,
        "num_workers": opts.workers,
        "collate_fn": collate,
        "pin_memory": pin_memory,
        "worker_init_fn": seed_worker,
        "persistent_workers": False,
    }

    blocks = [s.block for s in train]
    paths = {s.path for s in train if s.block is not None}
    window = min(BLOCK_WINDOW, row_groups_cached(paths)) if paths else 0

    def train_batches(epoch: int) -> Iterable[Inputs]:
        gen = epoch_generator(opts.seed, epoch)
        order = epoch_order(labels, opts.num_classes, opts.balance, gen)
        if window:
            order = _block_order(order, blocks, window, opts, d, epoch)
        else:
            order = _rank_order(order, d, epoch)
        if d.rank:  # distinct augmentation streams per rank; rank 0 = a single-process run
            gen = epoch_generator(opts.seed + 7919 * d.rank, epoch)
        return _unpack(
            DataLoader(train_set, sampler=order, drop_last=drop_last, generator=gen, **common)
        )

    def val_batches() -> Iterable[Inputs]:
        return _unpack(DataLoader(val_set, shuffle=False, **common))

    steps = per_rank // opts.batch_size if drop_last else 1
    return Feeder(train_batches, val_batches, steps, (3, opts.image_size, opts.image_size))


def loader_over(
    samples: Sequence[Sample],
    transform: Transform,
    min_side: int,
    batch_size: int,
    workers: int,
    seed: int | None = None,
) -> DataLoader[Item]:
    """A plain, ordered DataLoader (feature extraction, caching views, evaluation)."""
    dataset = ImageDataset(samples, transform, min_side, seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate,
        shuffle=False,
        worker_init_fn=seed_worker,
    )


def dataset_notices(index: DatasetIndex) -> Iterator[Notice]:
    """The dataset's own notes, and a count of the unusual inputs that get converted."""
    for note in index.notes:
        yield Notice("warning", note)
    samples = index.splits["train"] + index.splits["val"]
    line = describe_survey(survey_inputs(samples), len(samples))
    if line:
        yield Notice("info", f"inputs: {line}")


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
