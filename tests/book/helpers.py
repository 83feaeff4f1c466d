"""Book test helpers: generated photos in a store, plans over them, poppler wrappers."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from oiforge.book.model import Box, LetterPlan, Photo

CC_BY = "https://creativecommons.org/licenses/by/2.0/"
NEEDED_TOOLS = ("pdftoppm", "pdfinfo", "pdffonts", "pdftotext")


def require_poppler() -> None:
    missing = [t for t in NEEDED_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"poppler-utils missing ({missing}); run scripts/install-system-deps.sh")


def image_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_photo_file(path: Path, seed: int, size: tuple[int, int]) -> None:
    """A photo-like JPEG: coloured blocks and a shape, different for every seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    blocks = (rng.random((h // 24 + 1, w // 24 + 1, 3)) * 255).astype("uint8")
    img = Image.fromarray(blocks).resize((w, h), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    colour = tuple(int(c) for c in rng.integers(0, 255, 3))
    x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
    draw.ellipse((x0, y0, x0 + w // 3, y0 + h // 3), fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=88)


def store_photo(store: Path, key: str, seed: int, size: tuple[int, int] = (800, 600)) -> str:
    iid = image_id(key)
    make_photo_file(store / iid[:2] / f"{iid}.jpg", seed, size)
    return iid


def letter(store: Path, letter_: str, name: str, count: int, seed: int) -> LetterPlan:
    photos = []
    for k in range(count):
        iid = store_photo(store, f"{letter_}{k}", seed * 100 + k, (640 + 37 * k, 480 + 11 * k))
        box = Box(x_min=0.1, x_max=0.6, y_min=0.2, y_max=0.7) if k % 2 else None
        photos.append(
            Photo(
                image_id=iid,
                split="train",
                box=box,
                title=f"{name} <{k}> & co",
                author="Jane Doe",
                license=CC_BY,
                landing_url=f"https://www.flickr.com/photos/jane/{seed}{k}",
            )
        )
    label = name.split(" (")[0]
    return LetterPlan(letter=letter_, label=label, class_name=name, photos=tuple(photos))


def pdfinfo(path: Path) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    return {
        k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.stdout.splitlines())
    }


def pdffonts(path: Path) -> list[list[str]]:
    out = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True)
    return [line.split() for line in out.stdout.splitlines()[2:]]


def pdftext(path: Path) -> str:
    out = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    )
    return out.stdout
