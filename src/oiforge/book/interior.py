"""Drawing the interior: title page, one page per letter, credits, page numbers."""

from __future__ import annotations

import io
from dataclasses import dataclass

from reportlab import rl_config
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from oiforge.book.credits import CreditLine, credit_pages
from oiforge.book.fonts import BOLD, REGULAR, clean_text, fit_size, printable, wrap
from oiforge.book.geometry import POINTS_PER_INCH, PageGeometry, Rect, grid_cells
from oiforge.book.images import effective_dpi, encode_for_print
from oiforge.book.model import LayoutOptions
from oiforge.book.pick import PrintedLetter

INK = (0.13, 0.13, 0.16)
PALETTE = (  # soft colours for the letter band, one per letter in turn
    (0.98, 0.80, 0.36),
    (0.55, 0.80, 0.95),
    (0.98, 0.62, 0.55),
    (0.60, 0.86, 0.62),
    (0.80, 0.68, 0.95),
)
# reportlab's pure-Python ASCII85 encoder takes ~0.2 s per photo; binary streams are smaller
# and need no encoding (the C accelerator is not always installed).
rl_config.useA85 = 0
MAX_EMBED_DPI = 400  # photos are downsampled to this; more only grows the file


@dataclass(frozen=True)
class PlacedPhoto:
    """Where a printed photo landed: page, cell size and effective resolution."""

    letter: str
    image_id: str
    page: int
    cell_in: float
    dpi: float
    cropped: bool
    resized: bool


def new_canvas(buf: io.BytesIO, size: tuple[float, float], title: str, author: str) -> Canvas:
    """A canvas that writes no timestamp or random id (``invariant=1``)."""
    canvas = Canvas(buf, pagesize=size, invariant=1, pageCompression=1, initialFontName=REGULAR)
    canvas.setTitle(title)
    canvas.setAuthor(author or "oiforge")
    canvas.setCreator("oiforge book")
    canvas.setProducer("oiforge book (reportlab)")
    canvas.setSubject("An A to Z picture book of Open Images photos")
    return canvas


def photo_area(geo: PageGeometry, spread: bool = False) -> Rect:
    """Where the grid goes: below the letter band, or (spreads) below a one-line caption."""
    safe = geo.safe
    top = safe.h * 0.09 if spread else min(safe.h * 0.22, safe.w * 0.3)
    return Rect(safe.x, safe.y + 0.03 * safe.h, safe.w, safe.h - top - 0.05 * safe.h)


def cell_inches(geo: PageGeometry, count: int, spread: bool = False) -> float:
    """The printed side (inches) of one grid cell for ``count`` photos."""
    cells = grid_cells(photo_area(geo, spread), count, _gutter(geo, count))
    return cells[0].w / POINTS_PER_INCH


def _gutter(geo: PageGeometry, count: int) -> float:
    return geo.safe.w * (0.03 if count > 1 else 0.0)


def page_number(canvas: Canvas, geo: PageGeometry, number: int) -> None:
    canvas.setFont(REGULAR, 9)
    canvas.setFillColorRGB(*INK)
    canvas.drawCentredString(geo.page_size[0] / 2, geo.bleed + geo.margin * 0.45, str(number))


def draw_title_page(canvas: Canvas, geo: PageGeometry, layout: LayoutOptions) -> None:
    safe = geo.safe
    title = printable(clean_text(layout.title, 120), BOLD) or "A to Z"
    size = min(44.0, safe.w / 10)
    lines = wrap(title, BOLD, size, safe.w)[:4]
    y = safe.y + safe.h * 0.62
    canvas.setFillColorRGB(*INK)
    for line in lines:
        canvas.setFont(BOLD, size)
        canvas.drawCentredString(safe.x + safe.w / 2, y, line)
        y -= size * 1.2
    for text, pt in ((layout.subtitle, size * 0.5), (layout.author, size * 0.45)):
        text = printable(clean_text(text, 160))
        if text:
            y -= pt * 0.8
            canvas.setFont(REGULAR, pt)
            for line in wrap(text, REGULAR, pt, safe.w)[:3]:
                canvas.drawCentredString(safe.x + safe.w / 2, y, line)
                y -= pt * 1.25


def _draw_band(canvas: Canvas, geo: PageGeometry, page: PrintedLetter, index: int) -> None:
    """The coloured band with the big letter and the word; it bleeds off the top edge."""
    safe, (page_w, page_h) = geo.safe, geo.page_size
    area = photo_area(geo)
    band_bottom = area.y + area.h + 0.02 * safe.h
    canvas.setFillColorRGB(*PALETTE[index % len(PALETTE)])
    canvas.rect(0, band_bottom, page_w, page_h - band_bottom, stroke=0, fill=1)
    letter, label = (
        page.entry.letter,
        printable(clean_text(page.entry.label, 60), BOLD) or page.entry.letter,
    )
    band_h = safe.y + safe.h - band_bottom
    big = band_h * 0.8
    canvas.setFillColorRGB(*INK)
    canvas.setFont(BOLD, big)
    text_y = band_bottom + band_h * 0.2
    canvas.drawString(safe.x, text_y, f"{letter}{letter.lower()}")
    left = safe.x + canvas.stringWidth(f"{letter}{letter.lower()}", BOLD, big) + safe.w * 0.04
    width = safe.x + safe.w - left
    size = fit_size(label, BOLD, big * 0.55, width, smallest=10)
    lines = wrap(label, BOLD, size, width)[:2]
    for i, line in enumerate(lines):
        canvas.setFont(BOLD, size)
        canvas.drawString(left, text_y + (len(lines) - 1 - i) * size * 1.1, line)
    small = min(size * 0.45, 18)
    canvas.setFont(REGULAR, small)
    canvas.drawString(left, text_y + len(lines) * size * 1.1, f"{letter} is for")


def draw_letter_page(
    canvas: Canvas, geo: PageGeometry, page: PrintedLetter, index: int, number: int, jpeg_q: int
) -> list[PlacedPhoto]:
    """One letter: band, grid of square photos, page number; returns where photos went."""
    _draw_band(canvas, geo, page, index)
    placed = draw_grid(canvas, geo, photo_area(geo), page, number, jpeg_q)
    page_number(canvas, geo, number)
    return placed


def draw_grid(
    canvas: Canvas, geo: PageGeometry, area: Rect, page: PrintedLetter, number: int, jpeg_q: int
) -> list[PlacedPhoto]:
    """The photos of a letter as a grid of squares in ``area``."""
    count = len(page.photos)
    placed = []
    for cell, loaded in zip(grid_cells(area, count, _gutter(geo, count)), page.photos, strict=True):
        assert loaded.image is not None
        cell_in = cell.w / POINTS_PER_INCH
        data = encode_for_print(loaded.image, cell_in, MAX_EMBED_DPI, jpeg_q)
        canvas.drawImage(ImageReader(io.BytesIO(data)), cell.x, cell.y, cell.w, cell.h)
        resized = loaded.side > round(cell_in * MAX_EMBED_DPI)
        dpi = effective_dpi(loaded.side, cell_in)
        placed.append(
            PlacedPhoto(
                page.entry.letter,
                loaded.photo.image_id,
                number,
                cell_in,
                dpi,
                loaded.cropped,
                resized,
            )
        )
    return placed


def draw_credit_pages(
    canvas: Canvas, geo: PageGeometry, lines: list[CreditLine], first_number: int
) -> int:
    """The credits section; returns how many pages it took."""
    pages = credit_pages(lines, geo)
    for i, page in enumerate(pages):
        y = geo.safe.y + geo.safe.h
        canvas.setFillColorRGB(*INK)
        if i == 0:
            canvas.setFont(BOLD, 16)
            y -= 16
            canvas.drawString(geo.safe.x, y, "Photo credits")
            y -= 12
        for font, size, text in page:
            y -= size * 1.25
            canvas.setFont(font, size)
            canvas.drawString(geo.safe.x, y, text)
        page_number(canvas, geo, first_number + i)
        canvas.showPage()
    return len(pages)
