"""Rendering a plan: page count and size, fonts, credits, byte-identical regeneration."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.book.helpers import pdffonts, pdfinfo, pdftext, require_poppler

from oiforge.book.model import BookPlan, read_plan
from oiforge.book.render import render_book
from oiforge.errors import StageError

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "book"


@pytest.fixture(scope="module", autouse=True)
def _poppler() -> None:
    require_poppler()


def _layout(plan: BookPlan, **changes: object) -> BookPlan:
    return plan.model_copy(update={"layout": plan.layout.model_copy(update=changes)})


def test_pages_size_fonts_and_credits(small_plan: BookPlan, store: Path, tmp_path: Path) -> None:
    result = render_book(small_plan, tmp_path / "out", store)
    interior, cover = result.path("interior.pdf"), result.path("cover.pdf")
    info = pdfinfo(interior)
    # title + 4 letters + credits (+ a blank page to make the count even)
    assert int(info["Pages"]) == result.pages and result.pages % 2 == 0 and result.pages >= 6
    assert info["Page size"].startswith("612 x 612 pts")
    assert int(pdfinfo(cover)["Pages"]) == 2
    for pdf in (interior, cover):
        fonts = pdffonts(pdf)
        assert fonts, "text must use fonts"
        assert all(row[-5] == "yes" for row in fonts), fonts  # the "emb" column
        assert all(row[1] == "TrueType" for row in fonts), fonts
    assert result.printed == 1 + 4 + 4 + 9
    text = pdftext(interior)
    for word in ("Apple", "Bat", "Cat", "Dog", "Photo credits", "Aa", "A is for"):
        assert word in text


def test_attribution_matches_printed_photos_exactly(
    small_plan: BookPlan, store: Path, tmp_path: Path
) -> None:
    result = render_book(small_plan, tmp_path / "out", store)
    attribution = json.loads(result.path("attribution.json").read_text())
    final = read_plan(result.path("book.json"))
    printed = [p.image_id for entry in final.letters for p in entry.photos]
    attributed = [e["image_id"] for e in attribution["photos"]]
    assert sorted(printed) == sorted(attributed) and len(set(printed)) == len(printed)
    assert attribution["count"] == len(printed) == result.printed
    credits = pdftext(result.path("interior.pdf")).split("Photo credits", 1)[1]
    ids_in_credits = set(re.findall(r"\b[0-9a-f]{16}\b", credits))
    assert ids_in_credits == set(printed)
    for entry in attribution["photos"]:
        assert entry["license_name"] == "CC BY 2.0"
        assert entry["pages"] and all(2 <= p <= 5 for p in entry["pages"])
    assert final.status == "final"


def test_regenerating_from_book_json_gives_identical_bytes(
    small_plan: BookPlan, store: Path, tmp_path: Path
) -> None:
    first = render_book(small_plan, tmp_path / "one", store)
    again = render_book(read_plan(first.path("book.json")), tmp_path / "two", store)
    for name in ("interior.pdf", "cover.pdf", "attribution.json", "book.json"):
        assert first.path(name).read_bytes() == again.path(name).read_bytes(), name


def test_bleed_and_other_trim_sizes(small_plan: BookPlan, store: Path, tmp_path: Path) -> None:
    bled = render_book(_layout(small_plan, bleed=True), tmp_path / "b", store)
    assert pdfinfo(bled.path("interior.pdf"))["Page size"].startswith("630 x 630 pts")
    assert pdfinfo(bled.path("cover.pdf"))["Page size"].startswith("630 x 630 pts")
    a4 = render_book(_layout(small_plan, trim="A4"), tmp_path / "a4", store)
    size = pdfinfo(a4.path("interior.pdf"))["Page size"]
    assert size.startswith("595.27") and "841.8" in size


def test_spine_gives_one_wrap_page(small_plan: BookPlan, store: Path, tmp_path: Path) -> None:
    plan = _layout(small_plan, bleed=True, spine_in=0.5, title="Wrap")
    result = render_book(plan, tmp_path / "w", store)
    info = pdfinfo(result.path("cover.pdf"))
    assert info["Pages"] == "1"
    # 2 x 8.5 in + 0.5 in spine + 2 x 0.125 in bleed = 17.75 in = 1278 pt; 8.75 in = 630 pt
    assert info["Page size"].startswith("1278 x 630 pts")


def test_rendered_page_shows_band_letter_and_photos(
    small_plan: BookPlan, store: Path, tmp_path: Path
) -> None:
    result = render_book(small_plan, tmp_path / "out", store)
    prefix = tmp_path / "page"
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "60",
            "-png",
            "-f",
            "5",
            "-l",
            "5",
            str(result.path("interior.pdf")),
            str(prefix),
        ],
        check=True,
    )
    png = next(tmp_path.glob("page*.png"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, ARTIFACTS / "letter-page-D.png")
    pixels = np.asarray(Image.open(png).convert("RGB"), np.int16)
    assert pixels.shape[:2] == (510, 510)  # 8.5 in at 60 dpi
    top = pixels[: pixels.shape[0] // 10]
    assert (np.abs(top - top[0, 0]).sum(axis=2) < 30).mean() > 0.5  # a flat colour band
    assert tuple(top[0, 0]) != (255, 255, 255)
    middle = pixels[pixels.shape[0] // 2 - 50 : pixels.shape[0] // 2 + 50]
    assert middle.std() > 20  # photos, not an empty page


def test_missing_and_broken_files_are_dropped_not_fatal(
    small_plan: BookPlan, store: Path, tmp_path: Path
) -> None:
    dog = small_plan.letters[3]
    ids = [p.image_id for p in dog.photos]
    (store / ids[0][:2] / f"{ids[0]}.jpg").unlink()
    (store / ids[1][:2] / f"{ids[1]}.jpg").write_bytes(b"<html>photo unavailable</html>")
    truncated = store / ids[2][:2] / f"{ids[2]}.jpg"
    truncated.write_bytes(truncated.read_bytes()[:300])
    result = render_book(small_plan, tmp_path / "out", store)
    reasons = {d.image_id: d.reason for d in result.dropped}
    assert reasons[ids[0]] == "not downloaded (no row in the download journal)"
    assert "not a readable image" in reasons[ids[1]]
    assert ids[2] in reasons
    final = read_plan(result.path("book.json"))
    assert len(final.letters[3].photos) == 4  # 7 usable photos -> a 4-photo grid


def test_no_usable_photo_at_all_is_a_clear_error(small_plan: BookPlan, tmp_path: Path) -> None:
    with pytest.raises(StageError, match="no letter has a usable photo"):
        render_book(small_plan, tmp_path / "out", tmp_path / "empty-store")


def test_duplicate_image_is_printed_once(small_plan: BookPlan, store: Path, tmp_path: Path) -> None:
    cat = small_plan.letters[2]
    dog = small_plan.letters[3]
    twin = dog.model_copy(update={"photos": (cat.photos[0], *dog.photos)})
    plan = small_plan.model_copy(update={"letters": (*small_plan.letters[:3], twin)})
    result = render_book(plan, tmp_path / "out", store)
    ids = [e["image_id"] for e in json.loads(result.path("attribution.json").read_text())["photos"]]
    assert len(ids) == len(set(ids))


def test_spread_puts_letter_left_and_photos_right(
    small_plan: BookPlan, store: Path, tmp_path: Path
) -> None:
    result = render_book(_layout(small_plan, spread=True), tmp_path / "s", store)
    # title + 4 letters x 2 pages + credits pages (+ a blank page: even)
    assert result.pages == int(pdfinfo(result.path("interior.pdf"))["Pages"]) >= 10
    attribution = json.loads(result.path("attribution.json").read_text())
    pages = {e["letter"]: e["pages"][0] for e in attribution["photos"]}
    assert pages == {"A": 3, "B": 5, "C": 7, "D": 9}  # right-hand (odd) pages
    subprocess.run(
        ["pdftoppm", "-r", "30", "-png", "-f", "2", "-l", "2", str(result.path("interior.pdf")),
         str(tmp_path / "intro")],
        check=True,
    )  # fmt: skip
    intro = np.asarray(Image.open(next(tmp_path.glob("intro*.png"))).convert("RGB"), np.int16)
    background = intro[2, 2]
    assert tuple(background) != (255, 255, 255)
    assert (np.abs(intro - background).sum(axis=2) < 30).mean() > 0.6  # mostly the colour
