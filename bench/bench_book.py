"""Book render speed against the unavoidable image work and reportlab's default streams.

    .venv/bin/python bench/bench_book.py [--letters 26] [--photos 10] [--side 1024]

Generates photo-like JPEGs (``--side`` px longest side, q90) into bench/out/book (reused), a
plan of ``--letters`` letters with ``--photos`` candidates each, then measures in one run:
  1. limit: decode + square crop + resize + JPEG encode of every printed photo with Pillow
     alone (what any renderer must do at least once),
  2. ``render_book`` as shipped (binary image streams),
  3. ``render_book`` with reportlab's default ASCII85 image streams (the peer configuration),
  4. regenerating from the final book.json (must give identical bytes).
Prints seconds, printed photos/s, the ratios render/limit and ASCII85/ours, and PDF sizes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from reportlab import rl_config

from oiforge.book import BookPlan, LayoutOptions, LetterPlan, Photo, read_plan, render_book
from oiforge.book.photos import load_photo

OUT = Path(__file__).parent / "out" / "book"
CC_BY = "https://creativecommons.org/licenses/by/2.0/"


def _photo(path: Path, seed: int, side: int) -> None:
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    w, h = side, side * 3 // 4
    blocks = (rng.random((h // 16 + 1, w // 16 + 1, 3)) * 255).astype("uint8")
    img = Image.fromarray(blocks).resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        draw.ellipse(
            (x, y, x + w // 5, y + h // 5), fill=tuple(int(c) for c in rng.integers(0, 255, 3))
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=90)


def make_plan(letters: int, photos: int, side: int) -> BookPlan:
    entries = []
    for li in range(letters):
        letter = chr(ord("A") + li)
        items = []
        for k in range(photos):
            iid = hashlib.sha256(f"{letter}{k}{side}".encode()).hexdigest()[:16]
            _photo(OUT / "store" / iid[:2] / f"{iid}.jpg", li * 1000 + k, side)
            items.append(Photo(image_id=iid, title=f"{letter}{k}", author="bench", license=CC_BY))
        entries.append(
            LetterPlan(letter=letter, label=f"{letter}thing", class_name=f"{letter}thing",
                       photos=tuple(items))
        )  # fmt: skip
    return BookPlan(letters=tuple(entries), layout=LayoutOptions(max_photos=9))


def limit_seconds(plan: BookPlan) -> float:
    start = time.perf_counter()
    for entry in plan.letters:
        for photo in entry.photos[:9]:
            loaded = load_photo(photo, OUT / "store")
            assert loaded.image is not None
            img = loaded.image.resize((900, 900), Image.Resampling.LANCZOS)
            img.save(io.BytesIO(), "JPEG", quality=90)
    return time.perf_counter() - start


def timed_render(plan: BookPlan, out: Path) -> tuple[float, int]:
    start = time.perf_counter()
    result = render_book(plan, out, OUT / "store")
    return time.perf_counter() - start, result.printed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--letters", type=int, default=26)
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--side", type=int, default=1024)
    args = parser.parse_args()
    plan = make_plan(args.letters, args.photos, args.side)
    limit = limit_seconds(plan)
    ours, printed = timed_render(plan, OUT / "ours")
    rl_config.useA85 = 1
    try:
        a85, _ = timed_render(plan, OUT / "a85")
    finally:
        rl_config.useA85 = 0
    again, _ = timed_render(read_plan(OUT / "ours" / "book.json"), OUT / "again")
    same = all(
        (OUT / "ours" / n).read_bytes() == (OUT / "again" / n).read_bytes()
        for n in ("interior.pdf", "cover.pdf", "attribution.json", "book.json")
    )
    size = (OUT / "ours" / "interior.pdf").stat().st_size / 1e6
    size_a85 = (OUT / "a85" / "interior.pdf").stat().st_size / 1e6
    print(f"{printed} photos on {args.letters} letter pages ({args.side}px sources)")
    print(
        f"limit (Pillow decode+crop+resize+encode): {limit:.2f} s, {printed / limit:.1f} photos/s"
    )
    print(f"render_book (ours):        {ours:.2f} s, {printed / ours:.1f} photos/s, {size:.1f} MB")
    print(
        f"render_book (ASCII85 peer): {a85:.2f} s, {printed / a85:.1f} photos/s, {size_a85:.1f} MB"
    )
    print(f"regenerate from book.json: {again:.2f} s, identical bytes: {same}")
    print(f"ratio render/limit: {ours / limit:.2f}x; ASCII85 peer / ours: {a85 / ours:.2f}x")


if __name__ == "__main__":
    main()
