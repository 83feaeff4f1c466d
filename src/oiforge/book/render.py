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
from oiforge.book.credits import CreditEntry, attribution_json
from oiforge.book.layout import (
    POINTS_PER_INCH,
    PageGeometry,
    Preset,
    Rect,
    create_geometry,
    padded_page_count,
    resolve_preset,
)
from oiforge.book.model import BookPlan, LayoutOptions
from oiforge.book.pages import (
    BACK_COLOUR,
    COVER_PAGE,
    PlacedPhoto,
    cell_inches,
    cover_photos,
    draw_back,
    draw_credit_pages,
    draw_front,
    draw_letter_page,
    draw_spine,
    draw_spread,
    draw_title_page,
    new_canvas,
    start_page,
)
from oiforge.book.photos import (
    Dropped,
    GridChoice,
    PhotoSource,
    PrintedLetter,
    journal_statuses,
    pick_printed,
)
from oiforge.book.text import clean, clean_text, describe
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
    placed: tuple[PlacedPhoto, ...]  # every placed photo, cover included (page 0)
    min_dpi: int
    blank_pages: int = 0
    spine_in: float | None = None
    text_notes: tuple[str, ...] = ()  # characters left out or replaced, and where

    @property
    def low_dpi(self) -> tuple[PlacedPhoto, ...]:
        """Placed photos below the minimum resolution."""
        return tuple(p for p in self.placed if p.dpi < self.min_dpi)

    def path(self, name: str) -> Path:
        return self.out_dir / name


def _entries(
    placed: list[PlacedPhoto], pages: list[PrintedLetter], cover_ids: set[str]
) -> list[CreditEntry]:
    photos = {
        (p.entry.letter, lp.photo.image_id): (p.entry, lp.photo) for p in pages for lp in p.photos
    }
    entries = []
    for pp in placed:
        entry, photo = photos[(pp.letter, pp.image_id)]
        on_cover = pp.image_id in cover_ids
        entries.append(
            CreditEntry(photo, pp.letter, entry.label, (pp.page,), on_cover, pp.cropped,
                        pp.resized, pp.fit)
        )  # fmt: skip
    return entries


def _preset(layout: LayoutOptions) -> Preset | None:
    return resolve_preset(layout.preset) if layout.preset else None


@dataclass(frozen=True)
class _Interior:
    pdf: bytes
    pages: int
    blanks: int
    placed: list[PlacedPhoto]
    entries: list[CreditEntry]


def _interior(
    plan: BookPlan, geo: PageGeometry, pages: list[PrintedLetter], cover_ids: set[str]
) -> _Interior:
    layout = plan.layout
    buf = io.BytesIO()
    canvas = new_canvas(buf, geo, layout.title, layout.author)
    start_page(canvas, geo.for_page(1))
    draw_title_page(canvas, geo.for_page(1), layout)
    canvas.showPage()
    placed: list[PlacedPhoto] = []
    per_letter = 2 if layout.spread else 1
    for i, page in enumerate(pages):
        number = 2 + per_letter * i
        if layout.spread:
            placed += draw_spread(canvas, geo.for_page, page, i, number, layout.jpeg_quality)
        else:
            start_page(canvas, geo.for_page(number))
            placed += draw_letter_page(canvas, geo.for_page(number), page, i, number,
                                       layout.jpeg_quality)  # fmt: skip
        canvas.showPage()
    entries = _entries(placed, pages, cover_ids)
    count = 1 + per_letter * len(pages)
    count += draw_credit_pages(canvas, geo.for_page, entries, count + 1)
    total = padded_page_count(count, _preset(layout))
    for number in range(count + 1, total + 1):  # printers bind whole sheets: blank pages
        start_page(canvas, geo.for_page(number))
        canvas.showPage()
    canvas.save()
    return _Interior(buf.getvalue(), total, total - count, placed, entries)


def spine_width(layout: LayoutOptions, pages: int) -> float | None:
    """Inches: ``spine_in`` when given, else the preset's formula for the page count."""
    if layout.spine_in is not None:
        return layout.spine_in
    preset = _preset(layout)
    if preset is None:
        return None
    return round(preset.spine_in(pages, layout.paper or preset.papers[0]), 4)


def render_cover(
    geo: PageGeometry, layout: LayoutOptions, pages: list[PrintedLetter], words: str,
    spine_in: float | None, spine_text: bool = True,
) -> tuple[bytes, list[PlacedPhoto]]:  # fmt: skip
    """The cover PDF: two pages (front, back), or one wrap page when there is a spine."""
    buf = io.BytesIO()
    b, tw, th, margin = geo.bleed, geo.trim_w, geo.trim_h, geo.margin
    photos = cover_photos(pages)
    flat = PageGeometry(tw, th, b, margin)  # covers bleed on every side
    canvas = new_canvas(buf, flat, layout.title, layout.author)
    if spine_in is None:
        whole = Rect(0, 0, *flat.page_size)
        start_page(canvas, flat)
        placed = draw_front(canvas, flat.trim_box, whole, margin, photos, layout)
        canvas.showPage()
        start_page(canvas, flat)
        draw_back(canvas, flat.trim_box, whole, margin, words)
        canvas.showPage()
    else:
        spine_w = spine_in * POINTS_PER_INCH
        w, h = 2 * tw + spine_w + 2 * b, th + 2 * b
        canvas.setPageSize((w, h))
        canvas.setBleedBox((0, 0, w, h))
        canvas.setTrimBox((b, b, w - b, h - b))
        draw_back(canvas, Rect(b, b, tw, th), Rect(0, 0, b + tw, h), margin, words)
        spine = Rect(b + tw, 0, spine_w, h)
        canvas.setFillColorRGB(*BACK_COLOUR)
        canvas.rect(spine.x, spine.y, spine.w, spine.h, stroke=0, fill=1)
        if spine_text:
            draw_spine(canvas, Rect(spine.x, b, spine_w, th), layout.title)
        front = Rect(b + tw + spine_w, b, tw, th)
        placed = draw_front(canvas, front, Rect(front.x, 0, tw + b, h), margin, photos, layout)
        canvas.showPage()
    canvas.save()
    return buf.getvalue(), placed


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
    return ", ".join(f"{p.entry.letter} is for {clean(p.entry.label, 40)}" for p in pages)


def text_notes(plan: BookPlan, entries: list[CreditEntry]) -> tuple[str, ...]:
    """Characters dropped from printed text (emoji, control characters), with where."""
    texts = [("title", plan.layout.title), ("dedication", plan.layout.dedication)]
    texts += [(f"label of {e.letter}", e.label) for e in plan.letters]
    for e in entries:
        texts += [(f"title of {e.photo.image_id}", e.photo.title),
                  (f"author of {e.photo.image_id}", e.photo.author)]  # fmt: skip
    notes = []
    for where, text in texts:
        dropped = clean_text(text).dropped
        if dropped:
            notes.append(f"{where}: left out {describe(dropped)}")
    return tuple(notes)


def _pick(
    plan: BookPlan, geo: PageGeometry, store: Path | None, on_letter: Callable[[str], None] | None
) -> tuple[list[PrintedLetter], list[Dropped]]:
    layout = plan.layout
    grid = GridChoice(
        layout.max_photos, layout.grid,
        lambda n: cell_inches(geo, n, layout.spread) * layout.min_dpi,
    )  # fmt: skip
    source = PhotoSource(store, journal_statuses(store))
    return pick_printed(plan.letters, source, grid, on_letter)


def render_book(
    plan: BookPlan,
    out_dir: str | Path,
    store: str | Path | None,
    on_letter: Callable[[str], None] | None = None,
) -> RenderResult:
    """Print a plan into ``out_dir``; photos come from ``store`` (and local files)."""
    layout, out = plan.layout, Path(out_dir)
    preset = _preset(layout)
    bleed = layout.bleed_in if layout.bleed else 0.0
    geo = create_geometry(
        layout.trim, bleed, layout.margin_in, bool(preset and preset.bleed_outside_only and bleed)
    )
    pages, dropped = _pick(plan, geo, Path(store) if store is not None else None, on_letter)
    if not pages:
        raise StageError("no letter has a usable photo: download the selection first (--store)")
    cover_ids = {lp.photo.image_id for lp in cover_photos(pages)}
    inside = _interior(plan, geo, pages, cover_ids)
    spine = spine_width(layout, inside.pages)
    spine_text = preset is None or inside.pages >= preset.min_pages_spine_text
    cover, on_cover = render_cover(geo, layout, pages, _words(pages), spine, spine_text)
    write_bytes_atomic(out / "interior.pdf", inside.pdf)
    write_bytes_atomic(out / "cover.pdf", cover)
    write_text_atomic(out / "attribution.json", attribution_json(inside.entries))
    write_text_atomic(out / "book.json", final_plan(plan, pages).to_json())
    placed = tuple(inside.placed + on_cover)
    for p in placed:
        if p.dpi < layout.min_dpi:
            where = "front cover" if p.page == COVER_PAGE else f"page {p.page}"
            log.info("%s on %s prints at %.0f dpi (< %d)", p.image_id, where, p.dpi,
                     layout.min_dpi)  # fmt: skip
    return RenderResult(
        out, inside.pages, len(inside.placed), tuple(p.entry.letter for p in pages),
        tuple(dropped), placed, layout.min_dpi, inside.blanks, spine,
        text_notes(plan, inside.entries),
    )  # fmt: skip
