"""Text in every script: cleaning, font fallback per character, bidi, shaping, wrapping, drawing.

Flickr titles and authors come in every script. A line of text is printed as follows:

1. ``clean_text``: HTML entities unescaped (Open Images ships ``&quot;``, ``&amp;``, ``&#39;``
   as written on Flickr), NFC, control/format characters and emoji dropped (and reported),
   spaces collapsed.
2. ``layout_line``: the Unicode bidi algorithm (python-bidi) gives each character its
   embedding level; each character gets the first font of the fallback chain that has a
   glyph for it (marks and punctuation stay with the font before them); runs of one level
   and one font are shaped by HarfBuzz (reportlab's ``shapeStr`` over uharfbuzz), so Arabic
   joins, Devanagari and Thai form their clusters; runs are placed in visual order.
3. ``draw_line``: glyphs go on the page at their visual places but in *logical* order, each
   run wrapped in a marked-content span whose ``/ActualText`` is the run's text, so text
   extraction (``pdftotext``, screen readers, search) gives back the text as written.

Fonts are TrueType files from Debian packages (``scripts/install-system-deps.sh``): Noto Sans
(Latin, Greek, Cyrillic), Noto Sans Arabic/Hebrew/Thai/Devanagari, IPA Gothic (Japanese),
WenQuanYi Zen Hei (Chinese, Korean), DejaVu Sans and Noto Sans Symbols (symbols). They are
embedded as subsets. Fonts that are not installed are left out of the chain; characters no
font has are replaced by U+FFFD and reported.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from bidi.algorithm import (
    explicit_embed_and_overrides,
    get_base_level,
    get_embedding_levels,
    get_empty_storage,
    resolve_implicit_levels,
    resolve_neutral_types,
    resolve_weak_types,
)
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import ShapedStr, TTFont, shapeStr
from reportlab.pdfgen.canvas import Canvas

from oiforge.errors import StageError

Style = Literal["regular", "bold"]
REPLACEMENT = "\ufffd"
_FONT_DIRS = (
    Path("/usr/share/fonts/truetype"),
    Path("/usr/share/fonts/opentype"),
    Path("/usr/local/share/fonts"),
)


@dataclass(frozen=True)
class FontFile:
    """One font of the fallback chain: a registered name and where its file is."""

    family: str
    relpaths: tuple[str, ...]  # first one found wins
    bold_relpaths: tuple[str, ...] = ()
    cjk: str = ""  # "ja" or "zh-ko": preferred for Han characters in that context


#: Fallback order. Latin/Greek/Cyrillic first, then the scripts, then CJK, then symbols.
CHAIN: tuple[FontFile, ...] = (
    FontFile("NotoSans", ("noto/NotoSans-Regular.ttf",), ("noto/NotoSans-Bold.ttf",)),
    FontFile(
        "NotoSansArabic", ("noto/NotoSansArabic-Regular.ttf",), ("noto/NotoSansArabic-Bold.ttf",)
    ),
    FontFile(
        "NotoSansHebrew", ("noto/NotoSansHebrew-Regular.ttf",), ("noto/NotoSansHebrew-Bold.ttf",)
    ),
    FontFile("NotoSansThai", ("noto/NotoSansThai-Regular.ttf",), ("noto/NotoSansThai-Bold.ttf",)),
    FontFile(
        "NotoSansDevanagari",
        ("noto/NotoSansDevanagari-Regular.ttf",),
        ("noto/NotoSansDevanagari-Bold.ttf",),
    ),
    FontFile("IPAGothic", ("ipafont-gothic/ipagp.ttf", "ipafont-gothic/ipag.ttf"), cjk="ja"),
    FontFile("WenQuanYiZenHei", ("wqy/wqy-zenhei.ttc",), cjk="zh-ko"),
    FontFile("DejaVuSans", ("dejavu/DejaVuSans.ttf",), ("dejavu/DejaVuSans-Bold.ttf",)),
    FontFile("NotoSansSymbols", ("noto/NotoSansSymbols-Regular.ttf",)),
    FontFile("NotoSansSymbols2", ("noto/NotoSansSymbols2-Regular.ttf",)),
)


def _find(relpaths: Iterable[str]) -> Path | None:
    for rel in relpaths:
        for folder in _FONT_DIRS:
            if (folder / rel).is_file():
                return folder / rel
    return None


@dataclass(frozen=True)
class Face:
    """A registered font of the chain, with the characters it has glyphs for."""

    name: str
    cmap: frozenset[int]
    cjk: str = ""


@lru_cache(maxsize=2)
def font_chain(style: Style) -> tuple[Face, ...]:
    """The installed fonts of the chain for a style, registered with reportlab (embedded)."""
    faces = []
    for f in CHAIN:
        path = _find(f.bold_relpaths) if style == "bold" else None
        path = path or _find(f.relpaths)
        if path is None:
            continue
        name = f"OI-{f.family}-{style}" if path else f.family
        font = TTFont(name, str(path), subfontIndex=0)
        pdfmetrics.registerFont(font)
        faces.append(Face(name, frozenset(font.face.charToGlyph), f.cjk))
    if not faces:
        raise StageError(
            "no fonts for the book: install the Debian font packages "
            "(scripts/install-system-deps.sh: fonts-noto-core, fonts-dejavu-core, ...)"
        )
    return tuple(faces)


def font_files() -> dict[str, str]:
    """Family -> installed file, for ``oiforge book`` reports and the docs' check."""
    out = {}
    for f in CHAIN:
        path = _find(f.relpaths)
        if path is not None:
            out[f.family] = str(path)
    return out


# -- cleaning -------------------------------------------------------------------------------

_KEEP_FORMAT = {"\u200c", "\u200d"}  # ZWNJ/ZWJ shape Persian, Indic scripts


def is_emoji(ch: str) -> bool:
    """Pictographic emoji and their modifiers (text symbols such as ♥ or ☆ are kept)."""
    cp = ord(ch)
    return (
        0x1F000 <= cp <= 0x1FAFF
        or 0x1F1E6 <= cp <= 0x1F1FF
        or ch == "\ufe0f"
        or 0xE0020 <= cp <= 0xE007F
        or 0x1F3FB <= cp <= 0x1F3FF
    )


@dataclass(frozen=True)
class Cleaned:
    """Printable text and what had to be left out of it."""

    text: str
    dropped: tuple[str, ...] = ()


def _kept(ch: str) -> bool:
    cat = unicodedata.category(ch)
    if ch in _KEEP_FORMAT:
        return True
    return not (cat in ("Cc", "Cf", "Cs", "Co", "Cn") or is_emoji(ch))


def clean_text(text: str, limit: int = 400) -> Cleaned:
    """Unescape entities, NFC, drop control/format characters and emoji, collapse spaces."""
    raw = unicodedata.normalize("NFC", html.unescape(text or ""))
    kept, dropped = [], []
    for ch in raw:
        if ch.isspace():
            kept.append(" ")
        elif _kept(ch):
            kept.append(ch)
        else:
            dropped.append(ch)
    out = " ".join("".join(kept).split())
    if len(out) > limit:
        out = out[: limit - 1].rstrip() + "…"
    text_dropped = tuple(d for d in dropped if not d.isspace() and d != "\ufe0f")
    return Cleaned(out, text_dropped)


def clean(text: str, limit: int = 400) -> str:
    """``clean_text(...).text``."""
    return clean_text(text, limit).text


def describe(chars: Iterable[str]) -> str:
    """``U+1F600 GRINNING FACE, ...`` for a report."""
    seen = dict.fromkeys(chars)
    return ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed')}" for c in seen)


# -- bidi levels and font runs ---------------------------------------------------------------


_REMOVED_BY_X9 = frozenset({"BN", "RLE", "LRE", "RLO", "LRO", "PDF"})


def bidi_levels(text: str) -> list[int]:
    """The embedding level of every character (even: left to right, odd: right to left)."""
    if not any(unicodedata.bidirectional(c) in ("R", "AL", "AN") for c in text):
        return [0] * len(text)
    storage = get_empty_storage()
    base = get_base_level(text)
    storage["base_level"], storage["base_dir"] = base, ("L", "R")[base]
    get_embedding_levels(text, storage)
    explicit_embed_and_overrides(storage)
    resolve_weak_types(storage)
    resolve_neutral_types(storage, False)
    resolve_implicit_levels(storage, False)
    resolved = iter(int(c["level"]) for c in storage["chars"])
    levels, last = [], base
    for ch in text:  # rule X9 removed format characters: they take the level before them
        if unicodedata.bidirectional(ch) not in _REMOVED_BY_X9:
            last = next(resolved)
        levels.append(last)
    for i in range(len(text) - 1, -1, -1):  # rule L1: trailing spaces take the base level
        if not text[i].isspace():
            break
        levels[i] = base
    return levels


def _cjk_context(text: str) -> str:
    if any(0x3040 <= ord(c) <= 0x30FF or 0x31F0 <= ord(c) <= 0x31FF for c in text):
        return "ja"
    return "zh-ko"


def _is_han(ch: str) -> bool:
    cp = ord(ch)
    return 0x3400 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF or 0x20000 <= cp <= 0x3FFFF


def _choose(ch: str, chain: tuple[Face, ...], prev: Face | None, context: str) -> Face | None:
    cp = ord(ch)
    cat = unicodedata.category(ch)
    sticky = cat[0] in "MZP" or ch in _KEEP_FORMAT or cat in ("Nd", "Sk")
    if prev is not None and sticky and (cp in prev.cmap or cat[0] == "M" or ch in _KEEP_FORMAT):
        return prev
    if _is_han(ch):
        for face in sorted(chain, key=lambda f: f.cjk != context):
            if face.cjk and cp in face.cmap:
                return face
    return next((face for face in chain if cp in face.cmap), None)


@dataclass(frozen=True)
class Run:
    """Characters of one level and one font, shaped: ``glyphs`` in visual order."""

    text: str
    font: str
    size: float
    level: int
    glyphs: str  # a reportlab ShapedStr or plain str, ready to draw
    width: float

    @property
    def rtl(self) -> bool:
        return self.level % 2 == 1


@dataclass(frozen=True)
class Line:
    """A line of text laid out: runs in logical order, their visual order, what no font had."""

    runs: tuple[Run, ...]
    visual: tuple[int, ...]
    width: float
    missing: tuple[str, ...] = ()


def _shape(text: str, font: str, size: float, level: int) -> Run:
    shaped: Any = shapeStr(text, font, size)
    if isinstance(shaped, ShapedStr):
        width = sum(d.x_advance for d in shaped.__shapeData__) * size / 1000
    else:
        width = pdfmetrics.stringWidth(shaped, font, size)
    return Run(text, font, size, level, shaped, float(width))


def _font_runs(text: str, style: Style) -> tuple[list[tuple[str, Face, int]], list[str]]:
    chain = font_chain(style)
    levels = bidi_levels(text)
    context = _cjk_context(text)
    runs: list[tuple[str, Face, int]] = []
    missing: list[str] = []
    prev: Face | None = None
    for ch, level in zip(text, levels, strict=True):
        face = _choose(ch, chain, prev, context)
        if face is None:
            missing.append(ch)
            ch, face = REPLACEMENT, next((f for f in chain if 0xFFFD in f.cmap), chain[0])
        if runs and runs[-1][1] is face and runs[-1][2] == level:
            runs[-1] = (runs[-1][0] + ch, face, level)
        else:
            runs.append((ch, face, level))
        prev = face
    return runs, missing


def _visual_order(levels: list[int]) -> list[int]:
    """Rule L2: indices of runs in visual order, given each run's level."""
    order = list(range(len(levels)))
    if not levels:
        return order
    top = max(levels)
    lowest_odd = min((lv for lv in levels if lv % 2), default=top + 1)
    for level in range(top, lowest_odd - 1, -1):
        i = 0
        while i < len(order):
            if levels[order[i]] >= level:
                j = i
                while j < len(order) and levels[order[j]] >= level:
                    j += 1
                order[i:j] = order[i:j][::-1]
                i = j
            else:
                i += 1
    return order


@lru_cache(maxsize=4096)
def layout_line(text: str, style: Style, size: float) -> Line:
    """Lay out one line (no wrapping): fonts, bidi, shaping."""
    pieces, missing = _font_runs(text, style)
    runs = tuple(_shape(t, face.name, size, level) for t, face, level in pieces)
    visual = tuple(_visual_order([r.level for r in runs]))
    return Line(runs, visual, sum(r.width for r in runs), tuple(missing))


def text_width(text: str, style: Style, size: float) -> float:
    return layout_line(text, style, size).width


# -- wrapping ------------------------------------------------------------------------------


def _break_points(text: str) -> list[int]:
    """Indices where a line may break: after spaces, and between CJK/Thai characters."""
    points = []
    for i in range(1, len(text)):
        a, b = text[i - 1], text[i]
        if a == " " or (
            b != " " and (_breaks_anywhere(a) or _breaks_anywhere(b)) and not _is_mark(b)
        ):
            points.append(i)
    return points


def _breaks_anywhere(ch: str) -> bool:
    cp = ord(ch)
    return (
        _is_han(ch)
        or 0x3000 <= cp <= 0x30FF
        or 0x31F0 <= cp <= 0x31FF
        or 0xAC00 <= cp <= 0xD7AF
        or 0xFF00 <= cp <= 0xFFEF
    )


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "M" or ch in _KEEP_FORMAT


def _hard_split(text: str, style: Style, size: float, width: float) -> tuple[str, str]:
    """The longest prefix (whole grapheme-ish clusters) that fits ``width``; at least one."""
    cut = 1
    for i in range(1, len(text) + 1):
        if i < len(text) and _is_mark(text[i]):
            continue
        if text_width(text[:i], style, size) > width and cut > 0:
            break
        cut = i
    return text[:cut], text[cut:]


def wrap(text: str, style: Style, size: float, width: float) -> list[str]:
    """Lines of ``text`` (logical order) no wider than ``width``; long words break anywhere."""
    lines: list[str] = []
    rest = text.strip()
    while rest:
        if text_width(rest, style, size) <= width:
            lines.append(rest)
            break
        fits = [
            p for p in _break_points(rest) if text_width(rest[:p].rstrip(), style, size) <= width
        ]
        if fits:
            lines.append(rest[: fits[-1]].rstrip())
            rest = rest[fits[-1] :].lstrip()
        else:
            head, rest = _hard_split(rest, style, size, width)
            lines.append(head)
            rest = rest.lstrip()
    return lines


def fit_size(text: str, style: Style, largest: float, width: float, smallest: float = 6.0) -> float:
    """The largest font size (<= ``largest``) at which ``text`` fits on one line of ``width``."""
    w = text_width(text, style, largest)
    if w <= width or w == 0:
        return largest
    return max(smallest, largest * width / w)


# -- drawing -------------------------------------------------------------------------------


def _actual_text(text: str) -> str:
    return f"/Span <</ActualText <FEFF{text.encode('utf-16-be').hex().upper()}>>> BDC"


def _clusters(run: Run) -> Iterator[tuple[int, Any, float]]:
    """(cluster, glyphs, x offset) of a shaped right-to-left run, in visual order."""
    glyphs: Any = run.glyphs
    if not isinstance(glyphs, ShapedStr):
        x = 0.0
        for ch in glyphs:
            yield 0, ch, x
            x += pdfmetrics.stringWidth(ch, run.font, run.size)
        return
    data = glyphs.__shapeData__
    x, start = 0.0, 0
    for i in range(1, len(data) + 1):
        if i == len(data) or data[i].cluster != data[start].cluster:
            piece = glyphs[start:i]
            yield data[start].cluster, piece, x
            x += sum(d.x_advance for d in data[start:i]) * run.size / 1000
            start = i


def _draw_run(canvas: Canvas, run: Run, x: float, y: float) -> None:
    canvas.setFont(run.font, run.size)
    if not run.rtl:
        canvas._code.append(_actual_text(run.text))
        canvas.drawString(x, y, run.glyphs)
        canvas._code.append("EMC")
        return
    # Right to left: glyphs in visual order (as HarfBuzz gives them), each cluster with its
    # characters as its text. Extractors read a line left to right and turn right-to-left
    # stretches around (poppler's pdftotext does), so a cluster of several characters (the
    # lam-alef ligature) carries them in visual order too.
    clusters = list(_clusters(run))
    starts = [*sorted({c[0] for c in clusters}), len(run.text)]
    for start, piece, dx in clusters:
        end = starts[starts.index(start) + 1]
        canvas._code.append(_actual_text(run.text[start:end][::-1]))
        canvas.drawString(x + dx, y, piece)
        canvas._code.append("EMC")


def draw_line(
    canvas: Canvas, line: Line, x: float, y: float, align: Literal["left", "centre", "right"]
) -> None:
    """Draw a laid-out line at baseline ``y``; ``x`` is its left, centre or right edge."""
    cur = x - {"left": 0.0, "centre": line.width / 2, "right": line.width}[align]
    lefts = [0.0] * len(line.runs)
    for i in line.visual:
        lefts[i] = cur
        cur += line.runs[i].width
    for i in line.visual:  # left to right, the order text extraction expects
        _draw_run(canvas, line.runs[i], lefts[i], y)


def draw_text(
    canvas: Canvas,
    text: str,
    style: Style,
    size: float,
    x: float,
    y: float,
    align: Literal["left", "centre", "right"] = "left",
) -> Line:
    """Lay out and draw one line; returns the line (its ``missing`` characters for reports)."""
    line = layout_line(text, style, size)
    draw_line(canvas, line, x, y, align)
    return line
