"""Decoding (Pillow draft mode: DCT-scaled JPEG decode) and augmentation presets.

A sample that fails to decode is returned as ``None`` and dropped by :func:`collate`, which
reports its index so the trainer can count and warn: one bad file never stops a run.
"""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from oiforge.orientation import upright
from oiforge.train.dataset import Sample

log = logging.getLogger(__name__)

Transform = Callable[[Image.Image], torch.Tensor]
Item = tuple[torch.Tensor | None, int, int]


def decode_image(data: bytes, min_side: int) -> Image.Image:
    """Decode to RGB, upright by EXIF; JPEGs at the smallest DCT scale still >= ``min_side``."""
    img: Image.Image = Image.open(io.BytesIO(data))
    if img.format == "JPEG":
        img.draft("RGB", (min_side, min_side))
    img.load()
    rgb, _ = upright(img if img.mode == "RGB" else img.convert("RGB"), img)
    return rgb


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
    """Samples -> (tensor or None, label, index)."""

    def __init__(self, samples: Sequence[Sample], transform: Transform, min_side: int) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Item:
        sample = self.samples[index]
        try:
            image = decode_image(sample.read_bytes(), self.min_side)
            return self.transform(image), sample.label, index
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            log.debug("cannot decode %s: %s", sample.key, exc)
            return None, sample.label, index


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]


def collate(items: list[Item]) -> Batch:
    """Stack the good items; return (images, labels, indexes, bad indexes)."""
    good = [(x, y, i) for x, y, i in items if x is not None]
    bad = [i for x, _, i in items if x is None]
    if not good:
        empty = torch.empty(0)
        return empty, empty.long(), empty.long(), bad
    images = torch.stack([x for x, _, _ in good])
    labels = torch.tensor([y for _, y, _ in good], dtype=torch.long)
    indexes = torch.tensor([i for _, _, i in good], dtype=torch.long)
    return images, labels, indexes, bad


def seed_worker(worker_id: int) -> None:  # noqa: ARG001 (DataLoader's signature)
    """Seed Python and NumPy in a worker from torch's per-worker seed (deterministic runs)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
