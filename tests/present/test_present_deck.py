"""`oiforge present` on the demo's run: numbers, credits, Markdown, the browser, the PDF."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from present_helpers import Artefacts, cli, parse_deck, same

from oiforge.present.figures import wilson
from oiforge.present.model import parse_markdown, render_markdown

pytestmark = pytest.mark.slow

SLIDES = ("title", "problem", "data", "losses", "method", "results", "confusion", "mistakes",
          "cost", "problems", "next-data", "next-steps", "architecture", "sizing")  # fmt: skip


def test_every_number_is_the_artefacts(deck: Path, demo_root: Path) -> None:
    facts, _ = parse_deck((deck / "index.html").read_text(encoding="utf-8"))
    files = Artefacts(demo_root)
    checked = {f.name for f in facts if files.value(f) is not None}
    wrong = [(f, files.value(f)) for f in facts if files.value(f) is not None]
    wrong = [(f, v) for f, v in wrong if not same(f.value, v)]
    assert not wrong, wrong[:5]
    for needed in ("metrics.accuracy", "metrics.per_class.recall", "metrics.confusion",
                   "manifest.count", "selection.images", "journal.status", "excluded.reason",
                   "config.model", "summary.best_epoch", "metrics_csv.val_acc", "curve.score",
                   "estimate.img_s", "stats.duration_s", "manifest.license"):  # fmt: skip
        assert needed in checked, f"no {needed} fact on any slide"


def test_derived_numbers_are_recomputed_from_the_artefacts(deck: Path, demo_root: Path) -> None:
    facts, _ = parse_deck((deck / "index.html").read_text(encoding="utf-8"))
    metrics = Artefacts(demo_root).metrics
    n, acc = metrics["samples"], metrics["accuracy"]
    low, high = wilson(round(acc * n), n) or (0.0, 1.0)
    by_name = {(f.name, f.key): float(f.value) for f in facts if f.name.startswith("derived.")}
    assert by_name[("derived.accuracy_ci_low", None)] == low
    assert by_name[("derived.accuracy_ci_high", None)] == high
    assert 0 <= low <= acc <= high <= 1


def test_every_photo_is_credited_as_written(deck: Path, demo_root: Path) -> None:
    html = (deck / "index.html").read_text(encoding="utf-8")
    _, figures = parse_deck(html)
    rows = {r["image_id"]: r for r in Artefacts(demo_root).manifest}
    assert len(figures) >= 6
    for fig in figures:
        row = rows[fig["data-image-id"]]
        assert (fig["data-author"], fig["data-title"], fig["data-license"]) == (
            row["author"], row["title"], row["license"],
        )  # fmt: skip
        assert f"ImageID {row['image_id']}" in html


def test_markdown_round_trips(deck: Path, tmp_path: Path) -> None:
    text = (deck / "slides.md").read_text(encoding="utf-8")
    parsed = parse_markdown(text)
    assert render_markdown(parsed) == text
    assert tuple(s.id for s in parsed.slides) == SLIDES
    copy = tmp_path / "deck"
    cli("present", deck / "slides.md", "--out", copy)
    assert (copy / "index.html").read_bytes() == (deck / "index.html").read_bytes()
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "assets").symlink_to(deck / "assets")
    (edited / "slides.md").write_text(text.replace("## The problem", "## Our question"))
    cli("present", edited / "slides.md")
    assert "<h2>Our question</h2>" in (edited / "index.html").read_text(encoding="utf-8")


def test_pdf_has_a_page_per_slide_and_embedded_fonts(deck: Path) -> None:
    pdf = deck / "deck.pdf"
    info = subprocess.run(["pdfinfo", pdf], capture_output=True, text=True, check=True).stdout
    pages = next(int(line.split()[-1]) for line in info.splitlines() if line.startswith("Pages:"))
    assert pages == len(SLIDES)
    fonts = subprocess.run(["pdffonts", pdf], capture_output=True, text=True, check=True).stdout
    rows = fonts.splitlines()[2:]
    assert rows and all(r.split()[-5] == "yes" for r in rows), fonts


@pytest.mark.browser
@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720)])
def test_deck_in_chromium(deck: Path, chromium: Any, size: tuple[int, int]) -> None:
    page = chromium.new_page(viewport={"width": size[0], "height": size[1]})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto((deck / "index.html").as_uri())
    assert _current(page) == "title"
    overflowing = page.evaluate(OVERFLOW_JS)
    assert not overflowing, overflowing
    page.keyboard.press("ArrowRight")
    assert _current(page) == "problem"
    page.keyboard.press("End")
    assert _current(page) == "sizing"
    page.keyboard.press("ArrowLeft")
    assert _current(page) == "architecture"
    page.keyboard.press("Home")
    page.mouse.click(size[0] * 0.8, size[1] / 2)
    assert _current(page) == "problem"
    page.keyboard.press("n")
    assert "photo" in page.locator("#notes-panel").inner_text()
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert not errors, errors


def _current(page: Any) -> str:
    return str(page.evaluate("document.querySelector('.slide.current').id"))


OVERFLOW_JS = """() => Array.from(document.querySelectorAll('.slide')).flatMap(s => {
  s.classList.add('current');
  const out = Array.from(s.querySelectorAll('.body, .col, .body table, .photos'))
    .filter(e => e.scrollHeight > e.clientHeight + 1 || e.scrollWidth > e.clientWidth + 1)
    .map(e => `${s.id}: ${e.className || e.tagName} ${e.scrollWidth}x${e.scrollHeight}`);
  if (!s.matches('[data-index="1"]')) s.classList.remove('current');
  return out;
})"""


def test_an_auto_run_shows_every_candidate_and_how_the_kept_one_was_fitted(
    auto_deck: Path, demo_root: Path
) -> None:
    html = (auto_deck / "index.html").read_text(encoding="utf-8")
    facts, _ = parse_deck(html)
    files = Artefacts(demo_root, run="run-auto")
    wrong = [(f, files.value(f)) for f in facts if files.value(f) is not None]
    assert not [(f, v) for f, v in wrong if not same(f.value, v)]
    summary = files.json(files.run / "summary.json")
    shown = {f.key for f in facts if f.name == "candidate.name"}
    assert {c["name"] for c in summary["candidates"]} <= shown
    assert ("summary.auto_seconds", None) in {(f.name, f.key) for f in facts}
    slides = (auto_deck / "slides.md").read_text(encoding="utf-8")
    method = slides.split("\n## The method", 1)[1].split("\n## ", 1)[0]
    assert "Candidates tried" in method and "| kept |" in method
    rows = {c["name"]: c for c in summary["candidates"]}
    kept = rows[summary["chosen"]].get("members") or [summary["chosen"]]
    assert ("L-BFGS" in method) == ("probe" in kept)
    assert "None" not in slides  # never a Python value's repr on a slide
    skipped = [c["name"] for c in summary["candidates"] if c["status"].startswith("skipped")]
    assert bool(skipped) == ("not trained for lack of time" in slides)


@pytest.mark.browser
def test_an_auto_runs_method_slide_fits(auto_deck: Path, chromium: Any) -> None:
    page = chromium.new_page(viewport={"width": 1280, "height": 720})
    page.goto((auto_deck / "index.html").as_uri())
    overflowing = page.evaluate(OVERFLOW_JS)
    assert not overflowing, overflowing
