"""Credits in every script: what pdftotext reads back is the metadata as written (NFC,
entities unescaped); fonts embedded; print boxes; presets; ``book check`` on each rule."""

from __future__ import annotations

import json
import subprocess
import unicodedata
from pathlib import Path

import pytest
from tests.book.helpers import CC_BY, pdffonts, require_poppler, store_photo
from typer.testing import CliRunner

from oiforge.book import check_pdf, read_plan, render_book
from oiforge.book.layout import PRESETS, padded_page_count
from oiforge.book.model import BookPlan, LayoutOptions, LetterPlan, Photo
from oiforge.book.text import clean_text
from oiforge.cli import app
from oiforge.paths import package_data

ND = "https://creativecommons.org/licenses/by-nd/2.0/"


def _rows() -> list[tuple[str, str]]:
    """Real rows with non-Latin text or entities, and every constructed row."""
    real = json.loads(package_data("openimages", "real_attribution_rows.json").read_text())
    picked = [
        (v[2], v[3])
        for _, v in sorted(real.items())
        if any(ord(c) > 0x2FF for c in v[2] + v[3]) or "&" in v[2] + v[3]
    ]
    made = json.loads(package_data("openimages", "constructed_attribution_rows.json").read_text())
    return picked[:40] + [(a, t) for a, t in made["rows"]]


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BookPlan, Path]:
    require_poppler()
    tmp = tmp_path_factory.mktemp("scripts")
    store = tmp / "store"
    rows = _rows()
    letters = []
    for li, letter in enumerate("ABCDEFG"):
        photos = []
        for k in range(9):
            author, title = rows[(li * 9 + k) % len(rows)]
            iid = store_photo(store, f"{letter}{k}", li * 10 + k, (900, 700))
            licence = ND if k == 0 and letter == "B" else CC_BY
            photos.append(
                Photo(
                    image_id=iid,
                    title=title,
                    author=author,
                    license=licence,
                    landing_url=f"https://www.flickr.com/photos/x/{li}{k}",
                )
            )
        letters.append(LetterPlan(letter=letter, label=f"{letter}word", class_name=f"{letter}word",
                                  photos=tuple(photos)))  # fmt: skip
    layout = LayoutOptions(title="Книга · 本 · كتاب", dedication="Für Zoë — 山田 太郎 🍎",
                           preset="lulu", bleed=True, margin_in=0.5)  # fmt: skip
    plan = BookPlan(letters=tuple(letters), layout=layout)
    out = tmp / "out"
    render_book(plan, out, store)
    return out, plan, store


def _squash(text: str) -> str:
    return "".join(text.replace("\u202a", "").replace("\u202b", "").replace("\u202c", "").split())


def test_pdftotext_reads_every_credit_back_as_written(book: tuple[Path, BookPlan, Path]) -> None:
    out, _, _ = book
    text = subprocess.run(["pdftotext", str(out / "interior.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    credits = _squash(text.split("Photo credits", 1)[1])
    entries = json.loads((out / "attribution.json").read_text())["photos"]
    assert len(entries) == 7 * 9
    for e in entries:
        for field in ("title", "author"):
            expected = clean_text(e[field]).text
            assert expected == e[f"printed_{field}"]
            assert unicodedata.is_normalized("NFC", expected)
            assert _squash(expected) in credits, (field, expected)
    assert "&quot;" not in text and "&amp;" not in text and "\ufffd" not in text
    assert "Für Zoë — 山田 太郎" in text and "🍎" not in text  # emoji left out


def test_fonts_embedded_boxes_and_preset(book: tuple[Path, BookPlan, Path]) -> None:
    out, _, _ = book
    fonts = pdffonts(out / "interior.pdf")
    assert len(fonts) >= 6 and all(row[-5] == "yes" for row in fonts)
    info = subprocess.run(["pdfinfo", "-box", str(out / "interior.pdf")], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    boxes = {ln.split(":")[0]: ln.split(":")[1].split() for ln in info.splitlines() if "Box" in ln}
    assert boxes["TrimBox"] == ["9.00", "9.00", "621.00", "621.00"]  # 8.5 in
    assert boxes["BleedBox"] == boxes["MediaBox"] == ["0.00", "0.00", "630.00", "630.00"]
    report = check_pdf(out / "interior.pdf", PRESETS["lulu"], min_dpi=100)
    assert report.ok, report.violations
    assert len(report.pages) == padded_page_count(len(report.pages), PRESETS["lulu"]) >= 32
    cover = subprocess.run(["pdfinfo", str(out / "cover.pdf")], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    width = float(cover.split("Page size:")[1].split()[0])
    spine_in = len(report.pages) / 444 + 0.06  # Lulu's paperback spine formula
    assert width == pytest.approx(2 * 612 + spine_in * 72 + 2 * 9, abs=0.1)


def test_no_derivatives_photo_is_never_cropped(book: tuple[Path, BookPlan, Path]) -> None:
    out, plan, _ = book
    nd = plan.letters[1].photos[0].image_id
    entry = next(e for e in json.loads((out / "attribution.json").read_text())["photos"]
                 if e["image_id"] == nd)  # fmt: skip
    assert "cropped" not in entry["modifications"] and any(
        "whole" in m for m in entry["modifications"]
    )
    assert not entry["on_cover"]


def test_rebuild_is_byte_identical(book: tuple[Path, BookPlan, Path], tmp_path: Path) -> None:
    out, _, store = book
    render_book(read_plan(out / "book.json"), tmp_path, store)
    for name in ("interior.pdf", "cover.pdf", "attribution.json", "book.json"):
        assert (out / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_kdp_preset_bleeds_on_the_outside_edge(
    book: tuple[Path, BookPlan, Path], tmp_path: Path
) -> None:
    _, plan, store = book
    kdp = plan.model_copy(update={"layout": plan.layout.model_copy(update={"preset": "kdp"})})
    render_book(kdp, tmp_path, store)
    report = check_pdf(tmp_path / "interior.pdf", PRESETS["kdp"], min_dpi=100)
    assert report.ok, report.violations
    first, second = report.pages[0], report.pages[1]
    assert first.media[2] == pytest.approx(621) and first.media[3] == pytest.approx(630)
    assert first.trim[0] == 0 and second.trim[0] == pytest.approx(9)  # inside edge: no bleed


def test_book_check_names_each_broken_rule(
    book: tuple[Path, BookPlan, Path], tmp_path: Path
) -> None:
    out, plan, store = book
    plain = plan.model_copy(update={"layout": LayoutOptions(bleed=False)})
    render_book(plain, tmp_path, store)  # no bleed, 22 pages, photos at ~300-ish dpi
    report = check_pdf(tmp_path / "interior.pdf", PRESETS["lulu"], min_dpi=2000)
    broken = {r.name for r in report.violations}
    assert {"bleed 0.125 in", "32-800 pages", "images at 2000 dpi or more"} <= broken
    odd = tmp_path / "odd.pdf"
    subprocess.run(["pdfseparate", "-f", "1", "-l", "1", str(tmp_path / "interior.pdf"), str(odd)],
                   check=True)  # fmt: skip
    assert "page count a multiple of 2" in {
        r.name for r in check_pdf(odd, PRESETS["lulu"]).violations
    }
    runner = CliRunner()
    result = runner.invoke(app, ["book", "check", str(odd), "--preset", "lulu"], terminal_width=120)
    assert result.exit_code == 1 and "NO" in result.output and "TrimBox" in result.output
    fine = runner.invoke(app, ["book", "check", str(out / "interior.pdf"), "--preset", "lulu",
                               "--min-dpi", "100"], terminal_width=120)  # fmt: skip
    assert fine.exit_code == 0, fine.output
