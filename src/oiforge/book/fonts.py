"""Embedded TrueType fonts and text helpers (never the non-embedded base-14 fonts)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from oiforge.errors import StageError

REGULAR = "OIBook"
BOLD = "OIBook-Bold"
_DEJAVU_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/local/share/fonts/dejavu"),
)
_registered: dict[str, str] = {}


def _font_files(family: str) -> tuple[Path, Path]:
    if family == "Vera":
        import reportlab

        base = Path(reportlab.__file__).parent / "fonts"
        return base / "Vera.ttf", base / "VeraBd.ttf"
    for folder in _DEJAVU_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    raise StageError(
        "DejaVu Sans fonts not found (install Debian fonts-dejavu-core) - or use --font Vera"
    )


def default_family() -> str:
    """DejaVu Sans when installed (wider Unicode coverage), else reportlab's bundled Vera."""
    try:
        _font_files("DejaVuSans")
    except StageError:
        return "Vera"
    return "DejaVuSans"


def register_fonts(family: str) -> None:
    """Register ``OIBook``/``OIBook-Bold`` as the given family (embedded, subset)."""
    if _registered.get(REGULAR) == family:
        return
    regular, bold = _font_files(family)
    pdfmetrics.registerFont(TTFont(REGULAR, str(regular)))
    pdfmetrics.registerFont(TTFont(BOLD, str(bold)))
    _registered[REGULAR] = family


def clean_text(text: str, limit: int = 400) -> str:
    """Printable text: no control/format characters, single spaces, at most ``limit`` chars."""
    kept = [
        " " if ch.isspace() else ch
        for ch in unicodedata.normalize("NFC", text)
        if ch.isspace() or unicodedata.category(ch)[0] not in "CZ" or ch == " "
    ]
    out = " ".join("".join(kept).split())
    return out if len(out) <= limit else out[: limit - 1].rstrip() + "…"


def printable(text: str, font: str = REGULAR) -> str:
    """``text`` with each run of characters the font has no glyph for replaced by ``?``."""
    cmap = pdfmetrics.getFont(font).face.charToGlyph
    out: list[str] = []
    for ch in text:
        if ord(ch) in cmap or ch == " ":
            out.append(ch)
        elif not out or out[-1] != "?":
            out.append("?")
    return "".join(out)


def _break_word(word: str, font: str, size: float, width: float) -> list[str]:
    parts, cur = [], ""
    for ch in word:
        if cur and pdfmetrics.stringWidth(cur + ch, font, size) > width:
            parts.append(cur)
            cur = ""
        cur += ch
    return [*parts, cur] if cur else parts


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Lines of ``text`` no wider than ``width``; over-long words (URLs) break anywhere."""
    lines: list[str] = []
    cur = ""
    for word in text.split(" "):
        trial = f"{cur} {word}" if cur else word
        if pdfmetrics.stringWidth(trial, font, size) <= width:
            cur = trial
            continue
        if cur:
            lines.append(cur)
        pieces = _break_word(word, font, size, width) or [""]
        lines.extend(pieces[:-1])
        cur = pieces[-1]
    if cur:
        lines.append(cur)
    return lines


def fit_size(text: str, font: str, largest: float, width: float, smallest: float = 6.0) -> float:
    """The largest font size (<= ``largest``) at which ``text`` fits on one line of ``width``."""
    w = float(pdfmetrics.stringWidth(text, font, largest))
    if w <= width or w == 0:
        return largest
    return max(smallest, largest * width / w)
