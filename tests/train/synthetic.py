"""Small class-dependent image datasets drawn with Pillow (seconds to make)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = [(220, 40, 40), (40, 70, 220), (40, 180, 60), (200, 180, 30)]
SHAPES = ["ellipse", "rectangle", "polygon", "cross"]


def draw_image(label: int, rng: random.Random, size: tuple[int, int] = (96, 80)) -> Image.Image:
    """A noisy background with a class-specific shape and colour, random place and size."""
    w, h = size
    bg = tuple(rng.randint(90, 170) for _ in range(3))
    img = Image.new("RGB", size, bg)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = rng.randint(0, w), rng.randint(0, h)
        draw.line((x, y, rng.randint(0, w), rng.randint(0, h)), fill=(rng.randint(0, 255),) * 3)
    s = rng.randint(h // 3, h // 2 + 8)
    x0, y0 = rng.randint(0, w - s), rng.randint(0, h - s)
    box = (x0, y0, x0 + s, y0 + s)
    colour = COLOURS[label % len(COLOURS)]
    shape = SHAPES[label % len(SHAPES)]
    if shape == "ellipse":
        draw.ellipse(box, fill=colour)
    elif shape == "rectangle":
        draw.rectangle(box, fill=colour)
    elif shape == "polygon":
        draw.polygon([(x0, y0 + s), (x0 + s // 2, y0), (x0 + s, y0 + s)], fill=colour)
    else:
        draw.rectangle((x0 + s // 3, y0, x0 + 2 * s // 3, y0 + s), fill=colour)
        draw.rectangle((x0, y0 + s // 3, x0 + s, y0 + 2 * s // 3), fill=colour)
    return img


def make_dataset(
    root: Path,
    classes: int = 3,
    per_class: dict[str, int] | None = None,
    seed: int = 0,
    with_classes_json: bool = True,
    image_size: tuple[int, int] = (96, 80),
) -> Path:
    """``root/{train,val,test}/<class>/<id>.jpg`` (+ classes.json)."""
    per_class = per_class or {"train": 16, "val": 6, "test": 6}
    rng = random.Random(seed)
    names = [f"class{c}" for c in range(classes)]
    for split, n in per_class.items():
        for c, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image_id = f"{rng.getrandbits(64):016x}"
                draw_image(c, rng, image_size).save(folder / f"{image_id}.jpg", quality=90)
                del i
    if with_classes_json:
        rows = [
            {"index": i, "name": n.title(), "folder": n, "mid": f"/m/0{i}x"}
            for i, n in enumerate(names)
        ]
        (root / "classes.json").write_text(json.dumps(rows))
    return root
