"""A contact sheet for human review: ``contact_sheet.html`` + one PNG grid per class.

Flagged samples (grayscale, placeholder-like) come first; the HTML lists each tile's key so a
reviewer can copy bad ones into an ``--exclude-list`` file.
"""

from __future__ import annotations

import html
import io
import os
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from PIL import Image

from oiforge.atomic import write_text_atomic
from oiforge.build.assemble import ExportSample
from oiforge.contracts.dataset import ClassInfo

TILE: Final = 96
COLUMNS: Final = 8
MAX_TILES: Final = 64


def _grid(items: list[ExportSample], source: Callable[[str], Path]) -> Image.Image:
    rows = (len(items) + COLUMNS - 1) // COLUMNS
    sheet = Image.new("RGB", (COLUMNS * TILE, max(rows, 1) * TILE), (255, 255, 255))
    for n, s in enumerate(items):
        with Image.open(source(s.key)) as im:
            im.draft("RGB", (TILE, TILE))
            tile = im.convert("RGB")
            tile.thumbnail((TILE, TILE), Image.Resampling.BILINEAR)
        x = (n % COLUMNS) * TILE + (TILE - tile.width) // 2
        y = (n // COLUMNS) * TILE + (TILE - tile.height) // 2
        sheet.paste(tile, (x, y))
    return sheet


def _pick(items: list[ExportSample]) -> list[ExportSample]:
    return sorted(items, key=lambda s: (not s.record.flags,))[:MAX_TILES]


def _section(c: ClassInfo, items: list[ExportSample], total: int) -> list[str]:
    e = html.escape
    rows = "".join(
        f"<li><code>{e(s.record.image_id)}</code> {e(s.key)} ({e(s.split)})"
        f"{' <b>' + e(', '.join(s.record.flags)) + '</b>' if s.record.flags else ''}</li>"
        for s in items
    )
    return [
        f"<h2>{c.index}. {e(c.name)} <small><code>{e(c.mid)}</code>, {total} samples</small></h2>",
        f'<img src="review/{c.index:04d}.png" alt="{e(c.name)}" width="{COLUMNS * TILE}">',
        f"<details><summary>tiles, left to right</summary><ol>{rows}</ol></details>",
    ]


def _write_grid(path: Path, items: list[ExportSample], source: Callable[[str], Path]) -> None:
    """One class's PNG. A plain write: it lands in the build's staging directory, which is
    synced once and renamed into place whole (an fsync per class would cost more than the PNG).
    """
    buf = io.BytesIO()
    _grid(items, source).save(buf, "PNG", compress_level=1)
    path.write_bytes(buf.getvalue())


def write_contact_sheet(
    root: Path,
    classes: list[ClassInfo],
    samples: list[ExportSample],
    source: Callable[[str], Path],
) -> None:
    """Write ``review/<index>.png`` per class and ``contact_sheet.html``.

    Classes are drawn on threads (Pillow's decode, resize and PNG encode release the GIL).
    """
    by_mid: dict[str, list[ExportSample]] = defaultdict(list)
    for s in samples:
        by_mid[s.cls.mid].append(s)
    (root / "review").mkdir(parents=True, exist_ok=True)
    picked = {c.mid: _pick(by_mid[c.mid]) for c in classes}
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        jobs = [
            pool.submit(_write_grid, root / "review" / f"{c.index:04d}.png", picked[c.mid], source)
            for c in classes
        ]
        for job in jobs:
            job.result()
    body: list[str] = []
    for c in classes:
        body += _section(c, picked[c.mid], len(by_mid[c.mid]))
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>Contact sheet</title>'
        "<style>body{font-family:sans-serif;max-width:900px;margin:auto}img{display:block}"
        "</style></head><body><h1>Contact sheet</h1><p>Flagged samples first. Add bad ones to "
        "an exclude list (<code>ImageID[,box],reason</code>) and rebuild.</p>"
        + "\n".join(body)
        + "</body></html>\n"
    )
    write_text_atomic(root / "contact_sheet.html", page)
