"""``cover.pdf``: front (photo mosaic + title) and back, as two pages or one wrap with a spine."""

from __future__ import annotations

import io
import math

from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from oiforge.book.fonts import BOLD, REGULAR, clean_text, fit_size, printable, wrap
from oiforge.book.geometry import POINTS_PER_INCH, PageGeometry, Rect
from oiforge.book.images import LoadedPhoto, encode_for_print
from oiforge.book.interior import INK, MAX_EMBED_DPI, new_canvas
from oiforge.book.model import LayoutOptions
from oiforge.book.pick import PrintedLetter

BACK_COLOUR = (0.98, 0.95, 0.86)
MIN_SPINE_TEXT_IN = 0.25  # printers ask for no spine text on thinner spines


def cover_photos(pages: list[PrintedLetter]) -> list[LoadedPhoto]:
    """The mosaic: the first photo of each letter, as many as fill a 4/9/16 grid (or 1)."""
    firsts = [p.photos[0] for p in pages if p.photos]
    for n in (16, 9, 4, 1):
        if len(firsts) >= n:
            return firsts[:n]
    return []


def _draw_tile(canvas: Canvas, loaded: LoadedPhoto, cell: Rect, jpeg_q: int) -> None:
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


def _mosaic(canvas: Canvas, photos: list[LoadedPhoto], area: Rect, jpeg_q: int) -> None:
    n = math.isqrt(len(photos))
    if n == 0:
        return
    cw, ch = area.w / n, area.h / n
    for i, loaded in enumerate(photos):
        row, col = divmod(i, n)
        cell = Rect(area.x + col * cw, area.y + area.h - (row + 1) * ch, cw, ch)
        _draw_tile(canvas, loaded, cell, jpeg_q)


def _title_panel(canvas: Canvas, trim: Rect, margin: float, layout: LayoutOptions) -> None:
    width = trim.w - 2 * margin
    title = printable(clean_text(layout.title, 120), BOLD) or "A to Z"
    size = min(40.0, width / 9)
    lines = wrap(title, BOLD, size, width * 0.9)[:3]
    extra = [printable(clean_text(t, 160)) for t in (layout.subtitle, layout.author) if t.strip()]
    panel_h = len(lines) * size * 1.2 + len(extra) * size * 0.7 + size
    y0 = trim.y + trim.h * 0.5 - panel_h / 2
    canvas.setFillColorRGB(1, 1, 1)
    canvas.roundRect(trim.x + margin, y0, width, panel_h, size * 0.4, stroke=0, fill=1)
    canvas.setFillColorRGB(*INK)
    y = y0 + panel_h - size * 1.25
    cx = trim.x + trim.w / 2
    for line in lines:
        canvas.setFont(BOLD, size)
        canvas.drawCentredString(cx, y, line)
        y -= size * 1.2
    for text in extra:
        pt = fit_size(text, REGULAR, size * 0.5, width * 0.9)
        canvas.setFont(REGULAR, pt)
        canvas.drawCentredString(cx, y, text)
        y -= size * 0.7


def draw_front(
    canvas: Canvas,
    trim: Rect,
    fill: Rect,
    geo: PageGeometry,
    photos: list[LoadedPhoto],
    layout: LayoutOptions,
) -> None:
    """Front cover: a mosaic over ``fill`` (trim plus bleed) and the title panel on top."""
    canvas.setFillColorRGB(*BACK_COLOUR)
    canvas.rect(fill.x, fill.y, fill.w, fill.h, stroke=0, fill=1)
    _mosaic(canvas, photos, fill, layout.jpeg_quality)
    _title_panel(canvas, trim, geo.margin, layout)


def draw_back(canvas: Canvas, trim: Rect, fill: Rect, geo: PageGeometry, words: str) -> None:
    """Back cover: a plain colour, the A-Z word list, and where the credits are."""
    canvas.setFillColorRGB(*BACK_COLOUR)
    canvas.rect(fill.x, fill.y, fill.w, fill.h, stroke=0, fill=1)
    canvas.setFillColorRGB(*INK)
    width = trim.w - 2 * geo.margin
    y = trim.y + trim.h - geo.margin - 14
    canvas.setFont(BOLD, 14)
    canvas.drawString(trim.x + geo.margin, y, "From A to Z, with real photographs")
    for line in wrap(printable(words), REGULAR, 11, width)[:30]:
        y -= 15
        canvas.setFont(REGULAR, 11)
        canvas.drawString(trim.x + geo.margin, y, line)
    canvas.setFont(REGULAR, 8)
    note = "Photos: Open Images (CC BY and other licences); credits inside. Made with oiforge."
    for i, line in enumerate(reversed(wrap(note, REGULAR, 8, width))):
        canvas.drawString(trim.x + geo.margin, trim.y + geo.margin + i * 10, line)


def _spine(canvas: Canvas, spine: Rect, title: str) -> None:
    if spine.w < MIN_SPINE_TEXT_IN * POINTS_PER_INCH:
        return
    size = min(spine.w * 0.5, 14.0)
    text = printable(clean_text(title, 80), BOLD)
    size = fit_size(text, BOLD, size, spine.h * 0.8)
    canvas.saveState()
    canvas.translate(spine.x + spine.w / 2 + size * 0.35, spine.y + spine.h / 2)
    canvas.rotate(-90)
    canvas.setFillColorRGB(*INK)
    canvas.setFont(BOLD, size)
    canvas.drawCentredString(0, 0, text)
    canvas.restoreState()


def render_cover(
    geo: PageGeometry, layout: LayoutOptions, pages: list[PrintedLetter], words: str
) -> bytes:
    """The cover PDF: two pages (front, back), or one wrap page when a spine width is set."""
    buf = io.BytesIO()
    b, tw, th = geo.bleed, geo.trim_w, geo.trim_h
    photos = cover_photos(pages)
    if layout.spine_in is None:
        canvas = new_canvas(buf, geo.page_size, layout.title, layout.author)
        whole = Rect(0, 0, *geo.page_size)
        draw_front(canvas, geo.trim_box, whole, geo, photos, layout)
        canvas.showPage()
        draw_back(canvas, geo.trim_box, whole, geo, words)
        canvas.showPage()
    else:
        spine_w = layout.spine_in * POINTS_PER_INCH
        size = (2 * tw + spine_w + 2 * b, th + 2 * b)
        canvas = new_canvas(buf, size, layout.title, layout.author)
        draw_back(canvas, Rect(b, b, tw, th), Rect(0, 0, b + tw, size[1]), geo, words)
        spine = Rect(b + tw, 0, spine_w, size[1])
        canvas.setFillColorRGB(*BACK_COLOUR)
        canvas.rect(spine.x, spine.y, spine.w, spine.h, stroke=0, fill=1)
        _spine(canvas, Rect(spine.x, b, spine_w, th), layout.title)
        front = Rect(b + tw + spine_w, b, tw, th)
        draw_front(canvas, front, Rect(front.x, 0, tw + b, size[1]), geo, photos, layout)
        canvas.showPage()
    canvas.save()
    return buf.getvalue()
