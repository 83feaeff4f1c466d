"""Render a plan: ``interior.pdf``, ``cover.pdf``, ``attribution.json`` and the final ``book.json``.

Rendering the final ``book.json`` again (same store, same fonts) gives byte-identical files:
reportlab runs with ``invariant=1`` and every choice is a pure function of the plan and bytes.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from oiforge.atomic import write_bytes_atomic, write_text_atomic
from oiforge.book.cover import cover_photos, render_cover
from oiforge.book.credits import CreditLine, attribution_json
from oiforge.book.fonts import clean_text, register_fonts
from oiforge.book.geometry import PageGeometry, create_geometry
from oiforge.book.interior import (
    PlacedPhoto,
    cell_inches,
    draw_credit_pages,
    draw_letter_page,
    draw_title_page,
    new_canvas,
)
from oiforge.book.model import BookPlan
from oiforge.book.pick import Dropped, PrintedLetter, pick_printed
from oiforge.book.spread import draw_spread
from oiforge.errors import StageError

log = logging.getLogger(__name__)
OUTPUT_NAMES = ("interior.pdf", "cover.pdf", "attribution.json", "book.json")


@dataclass(frozen=True)
class RenderResult:
    """What a render wrote and what it noticed."""

    out_dir: Path
    pages: int
    printed: int
    letters: tuple[str, ...]
    dropped: tuple[Dropped, ...]
    low_dpi: tuple[PlacedPhoto, ...]

    def path(self, name: str) -> Path:
        return self.out_dir / name


def _credit_lines(
    placed: list[PlacedPhoto], pages: list[PrintedLetter], cover_ids: set[str]
) -> list[CreditLine]:
    photos = {
        (p.entry.letter, lp.photo.image_id): (p.entry, lp.photo) for p in pages for lp in p.photos
    }
    lines = []
    for pp in placed:
        entry, photo = photos[(pp.letter, pp.image_id)]
        lines.append(
            CreditLine(
                photo,
                pp.letter,
                entry.label,
                (pp.page,),
                pp.image_id in cover_ids,
                pp.cropped,
                pp.resized,
            )
        )
    return lines


def _interior(
    plan: BookPlan, geo: PageGeometry, pages: list[PrintedLetter], cover_ids: set[str]
) -> tuple[bytes, int, list[PlacedPhoto], list[CreditLine]]:
    layout = plan.layout
    buf = io.BytesIO()
    canvas = new_canvas(buf, geo.page_size, layout.title, layout.author)
    draw_title_page(canvas, geo, layout)
    canvas.showPage()
    placed: list[PlacedPhoto] = []
    per_letter = 2 if layout.spread else 1
    for i, page in enumerate(pages):
        number = 2 + per_letter * i
        if layout.spread:
            placed += draw_spread(canvas, geo, page, i, number, layout.jpeg_quality)
        else:
            placed += draw_letter_page(canvas, geo, page, i, number, layout.jpeg_quality)
        canvas.showPage()
    lines = _credit_lines(placed, pages, cover_ids)
    count = 1 + per_letter * len(pages)
    count += draw_credit_pages(canvas, geo, lines, count + 1)
    if count % 2:  # printers bind an even number of pages; the last one stays blank
        canvas.showPage()
        count += 1
    canvas.save()
    return buf.getvalue(), count, placed, lines


def final_plan(plan: BookPlan, pages: list[PrintedLetter]) -> BookPlan:
    """The plan with exactly the printed letters and photos, in print order."""
    letters = tuple(
        p.entry.model_copy(update={"photos": tuple(lp.photo for lp in p.photos)}) for p in pages
    )
    printed = {p.entry.letter for p in pages}
    skipped = dict(plan.skipped)
    for entry in plan.letters:
        if entry.letter not in printed:
            skipped[entry.letter] = f"no usable photo of {entry.class_name!r}"
    return plan.model_copy(update={"status": "final", "letters": letters, "skipped": skipped})


def _words(pages: list[PrintedLetter]) -> str:
    return ", ".join(f"{p.entry.letter} is for {clean_text(p.entry.label, 40)}" for p in pages)


def render_book(
    plan: BookPlan,
    out_dir: str | Path,
    store: str | Path | None,
    on_letter: Callable[[str], None] | None = None,
) -> RenderResult:
    """Print a plan into ``out_dir``; photos come from ``store`` (and local files)."""
    layout, out = plan.layout, Path(out_dir)
    register_fonts(layout.font)
    bleed = layout.bleed_in if layout.bleed else 0.0
    geo = create_geometry(layout.trim, bleed, layout.margin_in)
    pages, dropped = pick_printed(
        plan.letters,
        Path(store) if store is not None else None,
        layout.max_photos,
        lambda n: cell_inches(geo, n, layout.spread) * layout.min_dpi,
        on_letter,
    )
    if not pages:
        raise StageError("no letter has a usable photo: download the selection first (--store)")
    cover_ids = {lp.photo.image_id for lp in cover_photos(pages)}
    interior, count, placed, lines = _interior(plan, geo, pages, cover_ids)
    cover = render_cover(geo, layout, pages, _words(pages))
    write_bytes_atomic(out / "interior.pdf", interior)
    write_bytes_atomic(out / "cover.pdf", cover)
    write_text_atomic(out / "attribution.json", attribution_json(lines))
    write_text_atomic(out / "book.json", final_plan(plan, pages).to_json())
    low = tuple(p for p in placed if p.dpi < layout.min_dpi)
    for p in low:
        log.debug(
            "%s on page %d prints at %.0f dpi (< %d)", p.image_id, p.page, p.dpi, layout.min_dpi
        )
    return RenderResult(
        out, count, len(placed), tuple(p.entry.letter for p in pages), tuple(dropped), low
    )
