"""The spread layout: each letter on two facing pages, the letter left, its photos right."""

from __future__ import annotations

from reportlab.pdfgen.canvas import Canvas

from oiforge.book.fonts import BOLD, REGULAR, clean_text, fit_size, printable, wrap
from oiforge.book.geometry import PageGeometry
from oiforge.book.interior import (
    INK,
    PALETTE,
    PlacedPhoto,
    draw_grid,
    page_number,
    photo_area,
)
from oiforge.book.pick import PrintedLetter


def _label(page: PrintedLetter) -> str:
    return printable(clean_text(page.entry.label, 60), BOLD) or page.entry.letter


def draw_letter_intro(canvas: Canvas, geo: PageGeometry, page: PrintedLetter, index: int) -> None:
    """Left page: a full-bleed colour, the letter huge, "A is for Apple" below it."""
    safe, (page_w, page_h) = geo.safe, geo.page_size
    canvas.setFillColorRGB(*PALETTE[index % len(PALETTE)])
    canvas.rect(0, 0, page_w, page_h, stroke=0, fill=1)
    letter = page.entry.letter
    big = fit_size(f"{letter}{letter.lower()}", BOLD, safe.h * 0.5, safe.w * 0.9)
    canvas.setFillColorRGB(*INK)
    canvas.setFont(BOLD, big)
    cx = safe.x + safe.w / 2
    canvas.drawCentredString(cx, safe.y + safe.h * 0.45, f"{letter}{letter.lower()}")
    label = _label(page)
    size = fit_size(label, BOLD, safe.h * 0.12, safe.w * 0.9, smallest=12)
    y = safe.y + safe.h * 0.3
    canvas.setFont(REGULAR, size * 0.5)
    canvas.drawCentredString(cx, y, f"{letter} is for")
    for line in wrap(label, BOLD, size, safe.w * 0.9)[:2]:
        y -= size * 1.1
        canvas.setFont(BOLD, size)
        canvas.drawCentredString(cx, y, line)


def draw_spread(
    canvas: Canvas, geo: PageGeometry, page: PrintedLetter, index: int, number: int, jpeg_q: int
) -> list[PlacedPhoto]:
    """Pages ``number`` (the letter) and ``number + 1`` (the photos, with a caption)."""
    draw_letter_intro(canvas, geo, page, index)
    page_number(canvas, geo, number)
    canvas.showPage()
    safe = geo.safe
    canvas.setFillColorRGB(*INK)
    caption = _label(page)
    size = fit_size(caption, BOLD, safe.h * 0.06, safe.w)
    canvas.setFont(BOLD, size)
    canvas.drawCentredString(safe.x + safe.w / 2, safe.y + safe.h - size, caption)
    placed = draw_grid(canvas, geo, photo_area(geo, spread=True), page, number + 1, jpeg_q)
    page_number(canvas, geo, number + 1)
    return placed
