"""Book render time per page against the floor: reportlab drawing the same photos, no layout.

    .venv/bin/python bench/bench_book.py [--letters 26] [--photos 30] [--side 1024]

Generates photo-like JPEGs (``--side`` px longest side, q90) into bench/out/book (reused) and a
plan of ``--letters`` letters with ``--photos`` candidates each (5x5 grids), then measures in
one run:
  1. floor: a reportlab canvas drawing the same 25 photos per page (decode, square crop,
     downsample to 400 dpi, JPEG encode, drawImage), no text, no layout logic, no checks;
  2. ``render_book`` as shipped (picking, dpi-aware grid, text in every script, credits, cover);
  3. regenerating from the final book.json (must give identical bytes).
Writes bench/results/bench_book.json via bench/record.py.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from oiforge.book import (
    BookPlan,
    LayoutOptions,
    LetterPlan,
    Photo,
    RenderResult,
    read_plan,
    render_book,
)
from oiforge.book.photos import encode_for_print, load_photo
from record import Row, write_results

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
    return BookPlan(letters=tuple(entries), layout=LayoutOptions(max_photos=25, grid=5))


def floor_seconds(plan: BookPlan, per_page: int) -> float:
    """reportlab alone: the same photos drawn in a 5x5 grid, one page per letter."""
    start = time.perf_counter()
    canvas = Canvas(io.BytesIO(), pagesize=(612, 612), invariant=1, pageCompression=1)
    side = 612 * 0.8 / 5
    for entry in plan.letters:
        for k, photo in enumerate(entry.photos[:per_page]):
            loaded = load_photo(photo, OUT / "store")
            assert loaded.image is not None
            data = encode_for_print(loaded.image, side / 72, 400, 90)
            row, col = divmod(k, 5)
            canvas.drawImage(ImageReader(io.BytesIO(data)), 60 + col * side, 60 + row * side,
                             side, side)  # fmt: skip
        canvas.showPage()
    canvas.save()
    return time.perf_counter() - start


def timed_render(plan: BookPlan, out: Path) -> tuple[float, RenderResult]:
    start = time.perf_counter()
    result = render_book(plan, out, OUT / "store")
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--letters", type=int, default=26)
    parser.add_argument("--photos", type=int, default=30)
    parser.add_argument("--side", type=int, default=1024)
    args = parser.parse_args()
    plan = make_plan(args.letters, args.photos, args.side)
    floor = floor_seconds(plan, 25)
    ours, result = timed_render(plan, OUT / "ours")
    again, _ = timed_render(read_plan(OUT / "ours" / "book.json"), OUT / "again")
    same = all(
        (OUT / "ours" / n).read_bytes() == (OUT / "again" / n).read_bytes()
        for n in ("interior.pdf", "cover.pdf", "attribution.json", "book.json")
    )
    pages = args.letters
    print(f"{result.printed} photos on {pages} letter pages, {result.pages} pages in all "
          f"({args.side}px sources)")  # fmt: skip
    print(f"floor (reportlab, same photos, no layout): {floor:.2f} s, {floor / pages:.3f} s/page")
    print(f"render_book: {ours:.2f} s, {ours / pages:.3f} s/letter page; ratio {ours / floor:.2f}x")
    print(f"regenerate from book.json: {again:.2f} s, identical bytes: {same}")
    write_results("bench_book", [
        Row("render_book s per letter page", ours / pages, "s", peer="reportlab floor",
            peer_value=floor / pages, ratio=ours / floor,
            extra={"photos": result.printed, "pages": result.pages, "identical_rebuild": same,
                   "side_px": args.side}),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
