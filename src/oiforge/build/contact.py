"""A contact sheet for human review: ``contact_sheet.html`` + one JPEG sprite per class.

Every sample is its own tile on the page, at its true aspect ratio, with its ImageID, sample
key, split and review flags printed under it; flagged samples (grayscale, placeholder-like)
come first, outlined and labelled. The pixels of a class's tiles are packed into one sprite
(``review/<index>.jpg``), and each tile shows its part of it (CSS ``background-position``),
so a sheet of 600 classes is 601 files, not tens of thousands. The page uses the shared
oiforge style (inlined) and fits a phone's width.
"""

from __future__ import annotations

import html
import io
import os
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

from PIL import Image

from oiforge.atomic import write_text_atomic
from oiforge.build.assemble import ExportSample
from oiforge.build.classes import ClassInfo
from oiforge.paths import package_data

TILE: Final = 128
COLUMNS: Final = 8
MAX_TILES: Final = 64

_STYLE: Final = """
.toc{columns:14rem;padding-left:1.2rem}.toc li{break-inside:avoid}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:.4rem 0 1.6rem}
.tile{margin:0;background:var(--panel);border:2px solid var(--line);border-radius:var(--radius);
padding:6px;width:calc(128px + 16px);font-size:11.5px;min-width:0}
.tile.flagged{border-color:var(--bad);background:var(--bad-soft)}
.thumb{margin:0 auto 4px;background-repeat:no-repeat;border-radius:3px}
.tile code{display:block;font-size:11px;overflow-wrap:anywhere}
.tile .key{color:var(--muted);overflow-wrap:anywhere}
h2 small{font-weight:normal;color:var(--muted)}
"""


@dataclass(frozen=True)
class Placed:
    """Where a sample's thumbnail sits in its class sprite."""

    sample: ExportSample
    x: int
    y: int
    width: int
    height: int


def _pick(items: list[ExportSample]) -> list[ExportSample]:
    return sorted(items, key=lambda s: (not s.record.flags,))[:MAX_TILES]


def _sprite(items: list[ExportSample], source: Callable[[str], Path]) -> tuple[bytes, list[Placed]]:
    """The class's JPEG sprite and where each thumbnail is in it."""
    rows = (len(items) + COLUMNS - 1) // COLUMNS
    sheet = Image.new("RGB", (COLUMNS * TILE, max(rows, 1) * TILE), (255, 255, 255))
    placed = []
    for n, s in enumerate(items):
        with Image.open(source(s.key)) as im:
            im.draft("RGB", (TILE, TILE))
            tile = im.convert("RGB")
            tile.thumbnail((TILE, TILE), Image.Resampling.BILINEAR)
        x, y = (n % COLUMNS) * TILE, (n // COLUMNS) * TILE
        sheet.paste(tile, (x, y))
        placed.append(Placed(s, x, y, tile.width, tile.height))
    buf = io.BytesIO()
    sheet.save(buf, "JPEG", quality=85)
    return buf.getvalue(), placed


def _tile(c: ClassInfo, p: Placed) -> str:
    e, s = html.escape, p.sample
    flags = "".join(f' <span class="chip bad">{e(f)}</span>' for f in s.record.flags)
    style = (
        f"width:{p.width}px;height:{p.height}px;"
        f"background-image:url(review/{c.index:04d}.jpg);background-position:-{p.x}px -{p.y}px"
    )
    return (
        f'<figure class="tile{" flagged" if s.record.flags else ""}">'
        f'<div class="thumb" role="img" aria-label="{e(s.key)}" style="{style}"></div>'
        f"<figcaption><code>{e(s.record.image_id)}</code>"
        f'<span class="key">{e(s.key)} · {e(s.split)}</span>{flags}</figcaption></figure>'
    )


def _section(c: ClassInfo, placed: list[Placed], total: int) -> str:
    e = html.escape
    flagged = sum(1 for p in placed if p.sample.record.flags)
    shown = f"first {len(placed)} of {total}" if len(placed) < total else f"{total}"
    note = f", {flagged} flagged" if flagged else ""
    return (
        f'<h2 id="c{c.index}">{c.index}. {e(c.name)} <small><code>{e(c.mid)}</code> · '
        f"{shown} samples{note}</small></h2>"
        f'<div class="tiles">{"".join(_tile(c, p) for p in placed)}</div>'
    )


def _write_sprite(
    path: Path, items: list[ExportSample], source: Callable[[str], Path]
) -> list[Placed]:
    """One class's sprite. A plain write: it lands in the build's staging directory, which is
    synced once and renamed into place whole (an fsync per class would cost more than the file).
    """
    data, placed = _sprite(items, source)
    path.write_bytes(data)
    return placed


@cache
def _style() -> str:
    return package_data("web", "oiforge.css").read_text(encoding="utf-8") + _STYLE


def _page(classes: list[ClassInfo], sections: list[str], flagged: dict[int, int]) -> str:
    e = html.escape
    chip = '<span class="chip bad">{} flagged</span>'
    marks = {i: " " + chip.format(n) if n else "" for i, n in flagged.items()}
    toc = "".join(
        f'<li><a href="#c{c.index}">{e(c.name)}</a>{marks[c.index]}</li>' for c in classes
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Contact sheet</title><style>{_style()}</style></head><body>"
        '<main class="page"><h1>Contact sheet</h1><p>Every class\'s samples, flagged ones '
        "first (outlined in red). To leave one out, add its line "
        "(<code>ImageID[,box],reason</code>) to an exclude list and rebuild, or curate in "
        "<code>oiforge browse</code>.</p>"
        f'<ul class="toc">{toc}</ul>' + "\n".join(sections) + "</main></body></html>\n"
    )


def write_contact_sheet(
    root: Path,
    classes: list[ClassInfo],
    samples: list[ExportSample],
    source: Callable[[str], Path],
) -> None:
    """Write ``review/<index>.jpg`` per class and ``contact_sheet.html``.

    Classes are drawn on threads (Pillow's decode, resize and JPEG encode release the GIL).
    """
    by_mid: dict[str, list[ExportSample]] = defaultdict(list)
    for s in samples:
        by_mid[s.cls.mid].append(s)
    (root / "review").mkdir(parents=True, exist_ok=True)
    picked = {c.mid: _pick(by_mid[c.mid]) for c in classes}
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        jobs = [
            pool.submit(
                _write_sprite, root / "review" / f"{c.index:04d}.jpg", picked[c.mid], source
            )
            for c in classes
        ]
        placed = [job.result() for job in jobs]
    sections = [_section(c, p, len(by_mid[c.mid])) for c, p in zip(classes, placed, strict=True)]
    flagged = {c.index: sum(1 for s in by_mid[c.mid] if s.record.flags) for c in classes}
    write_text_atomic(root / "contact_sheet.html", _page(classes, sections, flagged))
