"""``oiforge book check PDF``: read a PDF back and check it against print rules.

Reports every page's boxes (MediaBox, BleedBox, TrimBox), every font (embedded or not) and
every placed image's effective resolution, then the rules: fonts embedded, images at
``min_dpi`` or better, and with a preset its trim size, bleed, page-count minimum, maximum and
multiple. The PDF is read with poppler's ``pdfinfo``, ``pdffonts`` and ``pdfimages`` (Debian
``poppler-utils``), which compute each image's pixels per inch from where it is drawn.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from oiforge.book.layout import POINTS_PER_INCH, Preset, parse_trim
from oiforge.errors import InvalidInputError, StageError

TOLERANCE_PT = 0.5
_BOX_RE = re.compile(r"^Page\s+(\d+)\s+(MediaBox|CropBox|BleedBox|TrimBox|ArtBox):\s+(.*)$")
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PageBoxes:
    number: int
    media: Box
    bleed: Box
    trim: Box

    @property
    def trim_size(self) -> tuple[float, float]:
        return self.trim[2] - self.trim[0], self.trim[3] - self.trim[1]

    @property
    def bleed_sides(self) -> tuple[float, float, float, float]:
        """Bleed beyond the trim box: left, bottom, right, top (points)."""
        m, t = self.media, self.trim
        return t[0] - m[0], t[1] - m[1], m[2] - t[2], m[3] - t[3]


@dataclass(frozen=True)
class FontInfo:
    name: str
    kind: str
    embedded: bool


@dataclass(frozen=True)
class ImageInfo:
    page: int
    width: int
    height: int
    dpi: float  # the lower of the x and y pixels per inch


@dataclass(frozen=True)
class Rule:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class CheckReport:
    """What ``check_pdf`` found."""

    path: Path
    pages: tuple[PageBoxes, ...]
    fonts: tuple[FontInfo, ...]
    images: tuple[ImageInfo, ...]
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rules)

    @property
    def violations(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if not r.ok)


def _run(tool: str, *args: str) -> str:
    if shutil.which(tool) is None:
        raise StageError(f"{tool} not found: install Debian poppler-utils")
    proc = subprocess.run([tool, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["failed"])[0]
        raise InvalidInputError(f"{args[-1]}: not a readable PDF ({tool}: {first})")
    return proc.stdout


def read_boxes(pdf: Path) -> tuple[PageBoxes, ...]:
    """Every page's MediaBox, BleedBox and TrimBox (missing boxes default as in PDF)."""
    raw: dict[int, dict[str, Box]] = {}
    for line in _run("pdfinfo", "-box", "-f", "1", "-l", "100000", str(pdf)).splitlines():
        match = _BOX_RE.match(line.strip())
        if match:
            x0, y0, x1, y1 = (float(v) for v in match[3].split())
            raw.setdefault(int(match[1]), {})[match[2]] = (x0, y0, x1, y1)
    return tuple(
        PageBoxes(
            n, b["MediaBox"], b.get("BleedBox", b["MediaBox"]), b.get("TrimBox", b["MediaBox"])
        )
        for n, b in sorted(raw.items())
    )


def read_fonts(pdf: Path) -> tuple[FontInfo, ...]:
    fonts = []
    for line in _run("pdffonts", str(pdf)).splitlines()[2:]:
        cols = line.split()
        if len(cols) >= 7:  # name type [type2] encoding emb sub uni object id
            fonts.append(FontInfo(cols[0], cols[1], cols[-5] == "yes"))
    return tuple(fonts)


def read_images(pdf: Path) -> tuple[ImageInfo, ...]:
    images = []
    for line in _run("pdfimages", "-list", str(pdf)).splitlines()[2:]:
        cols = line.split()
        if len(cols) >= 14 and cols[2] == "image":
            dpi = min(float(cols[12]), float(cols[13]))
            images.append(ImageInfo(int(cols[0]), int(cols[3]), int(cols[4]), dpi))
    return tuple(images)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE_PT


def _common_rules(report: CheckReport, min_dpi: int) -> list[Rule]:
    bare = [f.name for f in report.fonts if not f.embedded]
    low = [i for i in report.images if i.dpi < min_dpi]
    lowest = min((i.dpi for i in report.images), default=0.0)
    detail = ", ".join(f"p. {i.page} {i.width}x{i.height} px at {i.dpi:.0f} dpi" for i in low[:8])
    dpi_text = f"{len(low)} below: {detail}" if low else f"{len(report.images)} images"
    return [
        Rule("fonts embedded", not bare, ", ".join(bare) if bare else "all embedded"),
        Rule(f"images at {min_dpi} dpi or more", not low, f"{dpi_text}, lowest {lowest:.0f} dpi"),
    ]


def _bleed_ok(page: PageBoxes, preset: Preset) -> bool:
    b = preset.bleed_in * POINTS_PER_INCH
    left, bottom, right, top = page.bleed_sides
    if not (_close(bottom, b) and _close(top, b)):
        return False
    if preset.bleed_outside_only:  # right-hand (odd) pages bleed right, left-hand pages left
        outside, inside = (right, left) if page.number % 2 else (left, right)
        return _close(outside, b) and _close(inside, 0)
    return _close(left, b) and _close(right, b)


def _preset_rules(report: CheckReport, preset: Preset) -> list[Rule]:
    tw, th = (v * POINTS_PER_INCH for v in parse_trim(preset.trim))
    wrong_trim = [
        p.number
        for p in report.pages
        if not (_close(p.trim_size[0], tw) and _close(p.trim_size[1], th))
    ]
    wrong_bleed = [p.number for p in report.pages if not _bleed_ok(p, preset)]
    n = len(report.pages)
    pages_ok = preset.min_pages <= n <= preset.max_pages
    return [
        Rule(f"trim {preset.trim} in", not wrong_trim, _pages(wrong_trim) or "every page"),
        Rule(
            f"bleed {preset.bleed_in} in"
            + (" (outside edge)" if preset.bleed_outside_only else ""),
            not wrong_bleed,
            _pages(wrong_bleed) or "every page",
        ),
        Rule(f"{preset.min_pages}-{preset.max_pages} pages", pages_ok, f"{n} pages"),
        Rule(
            f"page count a multiple of {preset.page_multiple}",
            n % preset.page_multiple == 0,
            f"{n} pages",
        ),
    ]


def _pages(numbers: list[int]) -> str:
    if not numbers:
        return ""
    shown = ", ".join(str(n) for n in numbers[:10])
    return f"wrong on pages {shown}" + (
        f" and {len(numbers) - 10} more" if len(numbers) > 10 else ""
    )


def check_pdf(
    pdf: str | Path, preset: Preset | None = None, min_dpi: int | None = None
) -> CheckReport:
    """Read ``pdf`` and check it; ``report.ok`` is False when a rule is broken."""
    path = Path(pdf)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    report = CheckReport(path, read_boxes(path), read_fonts(path), read_images(path))
    dpi = min_dpi or (preset.min_dpi if preset else 300)
    rules = _common_rules(report, dpi) + (_preset_rules(report, preset) if preset else [])
    return CheckReport(path, report.pages, report.fonts, report.images, tuple(rules))
