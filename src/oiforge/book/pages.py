"""Drawing the pages: title page, one page (or a spread) per letter, credits, and the cover.

Every page has its MediaBox = BleedBox (trim plus bleed) and a TrimBox (the finished page).
Backgrounds (the letter band, the cover) run to the page edge, into the bleed; text and the
photos' cells stay inside the safe area. Text goes through ``text`` (every script, embedded
fonts); photos are downsampled to ``MAX_EMBED_DPI`` at their printed size.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

from reportlab import rl_config
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from oiforge.book.credits import CreditEntry, credit_pages
from oiforge.book.layout import POINTS_PER_INCH, PageGeometry, Rect, grid_cells
from oiforge.book.model import LayoutOptions
from oiforge.book.photos import LoadedPhoto, PrintedLetter, effective_dpi, encode_for_print
from oiforge.book.text import Style, clean, draw_text, fit_size, font_chain, text_width, wrap

INK = (0.13, 0.13, 0.16)
GREY = (0.38, 0.38, 0.42)
BACK_COLOUR = (0.98, 0.95, 0.86)
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
MIN_SPINE_TEXT_IN = 0.25  # printers ask for no spine text on thinner spines
COVER_PAGE = 0  # PlacedPhoto.page of a front-cover photo


@dataclass(frozen=True)
class PlacedPhoto:
    """Where a printed photo landed: page (0 = front cover), cell size, resolution, changes."""

    letter: str
    image_id: str
    page: int
    cell_in: float
    dpi: float
    cropped: bool
    resized: bool
    fit: bool = False


def new_canvas(buf: io.BytesIO, geo: PageGeometry, title: str, author: str) -> Canvas:
    """A canvas that writes no timestamp or random id (``invariant=1``)."""
    canvas = Canvas(
        buf,
        pagesize=geo.page_size,
        invariant=1,
        pageCompression=1,
        initialFontName=font_chain("regular")[0].name,
    )
    canvas.setTitle(clean(title, 200))
    canvas.setAuthor(clean(author, 200) or "oiforge")
    canvas.setCreator("oiforge book")
    canvas.setProducer("oiforge book (reportlab)")
    canvas.setSubject("An A to Z picture book of Open Images photos")
    return canvas


def start_page(canvas: Canvas, geo: PageGeometry) -> None:
    """Page size and boxes of the next page (MediaBox = BleedBox = trim + bleed)."""
    w, h = geo.page_size
    t = geo.trim_box
    canvas.setPageSize((w, h))
    canvas.setBleedBox((0, 0, w, h))
    canvas.setTrimBox((t.x, t.y, t.x + t.w, t.y + t.h))
    canvas.setArtBox((t.x, t.y, t.x + t.w, t.y + t.h))


def photo_area(geo: PageGeometry, spread: bool = False) -> Rect:
    """Where the grid goes: below the letter band, or (spreads) below a one-line caption."""
    safe = geo.safe
    top = safe.h * 0.09 if spread else min(safe.h * 0.22, safe.w * 0.3)
    return Rect(safe.x, safe.y + 0.03 * safe.h, safe.w, safe.h - top - 0.05 * safe.h)


def _gutter(geo: PageGeometry, count: int) -> float:
    return photo_area(geo).w * (0.025 if count > 1 else 0.0)


def cell_inches(geo: PageGeometry, count: int, spread: bool = False) -> float:
    """The printed side (inches) of one grid cell for ``count`` photos."""
    cells = grid_cells(photo_area(geo, spread), count, _gutter(geo, count))
    return cells[0].w / POINTS_PER_INCH


def page_number(canvas: Canvas, geo: PageGeometry, number: int) -> None:
    canvas.setFillColorRGB(*INK)
    x = geo.trim_box.x + geo.trim_box.w / 2
    draw_text(canvas, str(number), "regular", 9, x, geo.safe.y - geo.margin * 0.45, "centre")


def _centred_lines(
    canvas: Canvas, text: str, style: Style, size: float, box: Rect, y: float, most: int
) -> float:
    for line in wrap(text, style, size, box.w)[:most]:
        draw_text(canvas, line, style, size, box.x + box.w / 2, y, "centre")
        y -= size * 1.25
    return y


def draw_title_page(canvas: Canvas, geo: PageGeometry, layout: LayoutOptions) -> None:
    """Title, subtitle, author and the dedication, centred in the safe area."""
    safe = geo.safe
    canvas.setFillColorRGB(*INK)
    size = min(44.0, safe.w / 10)
    y = _centred_lines(canvas, clean(layout.title, 120) or "A to Z", "bold", size, safe,
                       safe.y + safe.h * 0.66, 4)  # fmt: skip
    for text, pt in ((layout.subtitle, size * 0.5), (layout.author, size * 0.45)):
        if clean(text):
            y = _centred_lines(canvas, clean(text, 160), "regular", pt, safe, y - pt * 0.8, 3)
    if clean(layout.dedication):
        canvas.setFillColorRGB(*GREY)
        _centred_lines(canvas, clean(layout.dedication, 400), "regular", 13, safe,
                       safe.y + safe.h * 0.2, 5)  # fmt: skip


def _draw_band(canvas: Canvas, geo: PageGeometry, page: PrintedLetter, index: int) -> None:
    """The coloured band with the big letter and the word; it bleeds off the top edge."""
    safe, (page_w, page_h) = geo.safe, geo.page_size
    area = photo_area(geo)
    band_bottom = area.y + area.h + 0.02 * safe.h
    canvas.setFillColorRGB(*PALETTE[index % len(PALETTE)])
    canvas.rect(0, band_bottom, page_w, page_h - band_bottom, stroke=0, fill=1)
    letter = page.entry.letter
    label = clean(page.entry.label, 60) or letter
    band_h = safe.y + safe.h - band_bottom
    big = band_h * 0.8
    canvas.setFillColorRGB(*INK)
    text_y = band_bottom + band_h * 0.2
    pair = f"{letter}{letter.lower()}"
    draw_text(canvas, pair, "bold", big, safe.x, text_y)
    left = safe.x + text_width(pair, "bold", big) + safe.w * 0.04
    width = safe.x + safe.w - left
    size = fit_size(label, "bold", big * 0.55, width, smallest=10)
    lines = wrap(label, "bold", size, width)[:2]
    for i, line in enumerate(lines):
        draw_text(canvas, line, "bold", size, left, text_y + (len(lines) - 1 - i) * size * 1.1)
    small = min(size * 0.45, 18)
    draw_text(canvas, f"{letter} is for", "regular", small, left, text_y + len(lines) * size * 1.1)


def draw_letter_page(
    canvas: Canvas, geo: PageGeometry, page: PrintedLetter, index: int, number: int, jpeg_q: int
) -> list[PlacedPhoto]:
    """One letter: band, grid of photos, page number; returns where photos went."""
    _draw_band(canvas, geo, page, index)
    placed = draw_grid(canvas, photo_area(geo), page, number, jpeg_q)
    page_number(canvas, geo, number)
    return placed


def _fitted(cell: Rect, loaded: LoadedPhoto) -> Rect:
    """A whole photo scaled to fit inside ``cell``, centred (no-derivatives licences)."""
    assert loaded.image is not None
    w, h = loaded.image.size
    scale = min(cell.w / w, cell.h / h)
    fw, fh = w * scale, h * scale
    return Rect(cell.x + (cell.w - fw) / 2, cell.y + (cell.h - fh) / 2, fw, fh)


def place_photo(canvas: Canvas, loaded: LoadedPhoto, cell: Rect, jpeg_q: int) -> tuple[float, bool]:
    """Draw one photo in ``cell`` (cropped square, or fitted whole); (dpi, resized)."""
    assert loaded.image is not None
    cell_in = cell.w / POINTS_PER_INCH
    target = _fitted(cell, loaded) if loaded.fit else cell
    data = encode_for_print(loaded.image, cell_in, MAX_EMBED_DPI, jpeg_q)
    canvas.drawImage(ImageReader(io.BytesIO(data)), target.x, target.y, target.w, target.h)
    resized = loaded.side > round(cell_in * MAX_EMBED_DPI)
    return effective_dpi(loaded.side, cell_in), resized


def draw_grid(
    canvas: Canvas, area: Rect, page: PrintedLetter, number: int, jpeg_q: int
) -> list[PlacedPhoto]:
    """The photos of a letter as a grid of squares in ``area``."""
    count = len(page.photos)
    gap = area.w * 0.025 if count > 1 else 0.0
    placed = []
    for cell, loaded in zip(grid_cells(area, count, gap), page.photos, strict=True):
        dpi, resized = place_photo(canvas, loaded, cell, jpeg_q)
        placed.append(
            PlacedPhoto(page.entry.letter, loaded.photo.image_id, number,
                        cell.w / POINTS_PER_INCH, dpi, loaded.cropped, resized, loaded.fit)
        )  # fmt: skip
    return placed


def draw_credit_pages(
    canvas: Canvas, geo_for: Callable[[int], PageGeometry], entries: list[CreditEntry], first: int
) -> int:
    """The credits section; returns how many pages it took."""
    geo = geo_for(first)
    pages = credit_pages(entries, geo.safe.w, geo.safe.h)
    for i, page in enumerate(pages):
        geo = geo_for(first + i)
        start_page(canvas, geo)
        y = geo.safe.y + geo.safe.h
        canvas.setFillColorRGB(*INK)
        if i == 0:
            y -= 16
            draw_text(canvas, "Photo credits", "bold", 16, geo.safe.x, y)
            y -= 12
        for style, size, text, grey in page:
            y -= size * 1.3
            canvas.setFillColorRGB(*(GREY if grey else INK))
            if text:
                draw_text(canvas, text, style, size, geo.safe.x, y)
        page_number(canvas, geo, first + i)
        canvas.showPage()
    return len(pages)


# -- spreads ---------------------------------------------------------------------------------


def draw_letter_intro(canvas: Canvas, geo: PageGeometry, page: PrintedLetter, index: int) -> None:
    """Left page: a full-bleed colour, the letter huge, "A is for Apple" below it."""
    safe, (page_w, page_h) = geo.safe, geo.page_size
    canvas.setFillColorRGB(*PALETTE[index % len(PALETTE)])
    canvas.rect(0, 0, page_w, page_h, stroke=0, fill=1)
    letter = page.entry.letter
    pair = f"{letter}{letter.lower()}"
    big = fit_size(pair, "bold", safe.h * 0.5, safe.w * 0.9)
    canvas.setFillColorRGB(*INK)
    cx = safe.x + safe.w / 2
    draw_text(canvas, pair, "bold", big, cx, safe.y + safe.h * 0.45, "centre")
    label = clean(page.entry.label, 60) or letter
    size = fit_size(label, "bold", safe.h * 0.12, safe.w * 0.9, smallest=12)
    y = safe.y + safe.h * 0.3
    draw_text(canvas, f"{letter} is for", "regular", size * 0.5, cx, y, "centre")
    for line in wrap(label, "bold", size, safe.w * 0.9)[:2]:
        y -= size * 1.1
        draw_text(canvas, line, "bold", size, cx, y, "centre")


def draw_spread(
    canvas: Canvas,
    geo_for: Callable[[int], PageGeometry],
    page: PrintedLetter,
    index: int,
    number: int,
    jpeg_q: int,
) -> list[PlacedPhoto]:
    """Pages ``number`` (the letter) and ``number + 1`` (the photos, with a caption)."""
    geo = geo_for(number)
    start_page(canvas, geo)
    draw_letter_intro(canvas, geo, page, index)
    page_number(canvas, geo, number)
    canvas.showPage()
    geo = geo_for(number + 1)
    start_page(canvas, geo)
    safe = geo.safe
    canvas.setFillColorRGB(*INK)
    caption = clean(page.entry.label, 60) or page.entry.letter
    size = fit_size(caption, "bold", safe.h * 0.06, safe.w)
    draw_text(canvas, caption, "bold", size, safe.x + safe.w / 2, safe.y + safe.h - size, "centre")
    area = photo_area(geo, spread=True)
    placed = draw_grid(canvas, area, page, number + 1, jpeg_q)
    page_number(canvas, geo, number + 1)
    return placed


# -- cover -----------------------------------------------------------------------------------


def cover_photos(pages: list[PrintedLetter]) -> list[LoadedPhoto]:
    """The mosaic: the best croppable photo of each letter, as many as fill a 5x5..1 grid."""
    firsts = [next((lp for lp in p.photos if not lp.fit), None) for p in pages]
    usable = [lp for lp in firsts if lp is not None]
    for n in (25, 16, 9, 4, 1):
        if len(usable) >= n:
            return usable[:n]
    return []


def _draw_tile(canvas: Canvas, loaded: LoadedPhoto, cell: Rect, jpeg_q: int) -> float:
    """One mosaic tile (a square photo clipped to ``cell``); returns its effective dpi."""
    assert loaded.image is not None
    side = max(cell.w, cell.h)
    data = encode_for_print(loaded.image, side / POINTS_PER_INCH, MAX_EMBED_DPI, jpeg_q)
    canvas.saveState()
    path = canvas.beginPath()
    path.rect(cell.x, cell.y, cell.w, cell.h)
    canvas.clipPath(path, stroke=0, fill=0)
    x, y = cell.x + (cell.w - side) / 2, cell.y + (cell.h - side) / 2
    canvas.drawImage(ImageReader(io.BytesIO(data)), x, y, side, side)
    canvas.restoreState()
    return effective_dpi(loaded.side, side / POINTS_PER_INCH)


def _mosaic(
    canvas: Canvas, photos: list[LoadedPhoto], area: Rect, jpeg_q: int
) -> list[PlacedPhoto]:
    n = math.isqrt(len(photos))
    placed: list[PlacedPhoto] = []
    if n == 0:
        return placed
    cw, ch = area.w / n, area.h / n
    for i, loaded in enumerate(photos):
        row, col = divmod(i, n)
        cell = Rect(area.x + col * cw, area.y + area.h - (row + 1) * ch, cw, ch)
        dpi = _draw_tile(canvas, loaded, cell, jpeg_q)
        side_in = max(cw, ch) / POINTS_PER_INCH
        resized = loaded.side > round(side_in * MAX_EMBED_DPI)
        placed.append(
            PlacedPhoto("", loaded.photo.image_id, COVER_PAGE, side_in, dpi, loaded.cropped,
                        resized)
        )  # fmt: skip
    return placed


def _title_panel(canvas: Canvas, trim: Rect, margin: float, layout: LayoutOptions) -> None:
    width = trim.w - 2 * margin
    title = clean(layout.title, 120) or "A to Z"
    size = min(40.0, width / 9)
    lines = wrap(title, "bold", size, width * 0.9)[:3]
    extra = [clean(t, 160) for t in (layout.subtitle, layout.author) if clean(t)]
    panel_h = len(lines) * size * 1.2 + len(extra) * size * 0.7 + size
    y0 = trim.y + trim.h * 0.5 - panel_h / 2
    canvas.setFillColorRGB(1, 1, 1)
    canvas.roundRect(trim.x + margin, y0, width, panel_h, size * 0.4, stroke=0, fill=1)
    canvas.setFillColorRGB(*INK)
    y = y0 + panel_h - size * 1.25
    cx = trim.x + trim.w / 2
    for line in lines:
        draw_text(canvas, line, "bold", size, cx, y, "centre")
        y -= size * 1.2
    for text in extra:
        draw_text(canvas, text, "regular", fit_size(text, "regular", size * 0.5, width * 0.9),
                  cx, y, "centre")  # fmt: skip
        y -= size * 0.7


def draw_front(
    canvas: Canvas, trim: Rect, fill: Rect, margin: float, photos: list[LoadedPhoto],
    layout: LayoutOptions,
) -> list[PlacedPhoto]:  # fmt: skip
    """Front cover: a mosaic over ``fill`` (trim plus bleed) and the title panel on top."""
    canvas.setFillColorRGB(*BACK_COLOUR)
    canvas.rect(fill.x, fill.y, fill.w, fill.h, stroke=0, fill=1)
    placed = _mosaic(canvas, photos, fill, layout.jpeg_quality)
    _title_panel(canvas, trim, margin, layout)
    return placed


def draw_back(canvas: Canvas, trim: Rect, fill: Rect, margin: float, words: str) -> None:
    """Back cover: a plain colour, the A-Z word list, and where the credits are."""
    canvas.setFillColorRGB(*BACK_COLOUR)
    canvas.rect(fill.x, fill.y, fill.w, fill.h, stroke=0, fill=1)
    canvas.setFillColorRGB(*INK)
    width = trim.w - 2 * margin
    y = trim.y + trim.h - margin - 14
    draw_text(canvas, "From A to Z, with real photographs", "bold", 14, trim.x + margin, y)
    for line in wrap(words, "regular", 11, width)[:30]:
        y -= 15
        draw_text(canvas, line, "regular", 11, trim.x + margin, y)
    note = "Photos: Open Images (CC BY and other licences); credits inside. Made with oiforge."
    for i, line in enumerate(reversed(wrap(note, "regular", 8, width))):
        draw_text(canvas, line, "regular", 8, trim.x + margin, trim.y + margin + i * 10)


def draw_spine(canvas: Canvas, spine: Rect, title: str) -> None:
    """The title along the spine (top to bottom), when the spine is wide enough."""
    if spine.w < MIN_SPINE_TEXT_IN * POINTS_PER_INCH:
        return
    text = clean(title, 80)
    size = fit_size(text, "bold", min(spine.w * 0.5, 14.0), spine.h * 0.8)
    canvas.saveState()
    canvas.translate(spine.x + spine.w / 2 + size * 0.35, spine.y + spine.h / 2)
    canvas.rotate(-90)
    canvas.setFillColorRGB(*INK)
    draw_text(canvas, text, "bold", size, 0, 0, "centre")
    canvas.restoreState()
