"""Serve test helpers: a small model in the train contract's format and photo-like images.

Until ``oiforge.train.load_trained`` exists, the run is built here in the train stage's
contract format from a small timm model, and exported with ``export_model``.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from oiforge.serve.labels import ClassInfo, Labels, ModelInfo, Preprocessing

CLASSES = [("Cat", "/m/01yrx"), ("Coffee cup", "/m/02p5f1q"), ("Rocket", "/m/09rvcxw")]
PRE = Preprocessing(size=96, crop_pct=0.875, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def small_model() -> object:
    import timm
    import torch

    torch.manual_seed(0)
    return timm.create_model("mobilenetv3_small_050", num_classes=len(CLASSES)).eval()


def small_labels() -> Labels:
    classes = tuple(ClassInfo(i, n, m) for i, (n, m) in enumerate(CLASSES))
    return Labels(classes, PRE, ModelInfo("test-run", "x", "mobilenetv3_small_050"))


def photo(width: int = 160, height: int = 120, mode: str = "RGB", fmt: str = "JPEG") -> bytes:
    """A smooth photo-like image (gradients + noise) encoded as bytes."""
    rng = np.random.default_rng(width * 7 + height)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / max(width, 1), y * 255 / max(height, 1), (x + y) % 256], axis=-1)
    noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(noisy, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()
