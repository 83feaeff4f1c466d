"""``make_deck``: a run's artefacts -> ``deck/slides.md`` + ``deck/index.html`` (+ ``deck.pdf``).

The HTML is always rendered from the Markdown text just written, so the Markdown is the
deck's true source: ``render_deck(deck/slides.md)`` after an edit gives the edited deck, and
without an edit the same bytes.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from oiforge import __version__
from oiforge.atomic import write_bytes_atomic, write_text_atomic
from oiforge.errors import StageError
from oiforge.present import slides_cost as cost
from oiforge.present import slides_data as data
from oiforge.present import slides_intro as intro
from oiforge.present import slides_next as nxt
from oiforge.present import slides_results as results
from oiforge.present.facts import Missing
from oiforge.present.gather import Inputs, Options, gather
from oiforge.present.measure import EstimateFacts, LearningCurve
from oiforge.present.model import Deck, read_markdown, render_html, render_markdown

HTML_FILE = "index.html"
MARKDOWN_FILE = "slides.md"
PDF_FILE = "deck.pdf"
ASSETS = "assets"
#: Debian's Chromium needs these headless, as root, on a closed network.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
)


@dataclass
class DeckResult:
    out: Path
    html: Path
    markdown: Path
    slides: int
    pdf: Path | None = None
    missing: list[Missing] = field(default_factory=list)
    measured: dict[str, float] = field(default_factory=dict)  # seconds spent measuring now
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase


def build_deck(inputs: Inputs) -> Deck:
    run = inputs.run
    slides = (
        intro.title_slide(inputs),
        intro.problem_slide(inputs),
        data.selection_slide(inputs),
        data.losses_slide(inputs),
        intro.method_slide(inputs),
        results.results_slide(inputs),
        results.confusion_slide(inputs),
        results.mistakes_slide(inputs),
        cost.cost_slide(inputs),
        cost.problems_slide(inputs),
        nxt.curve_slide(inputs),
        nxt.actions_slide(inputs),
        nxt.architecture_slide(inputs),
        nxt.sizing_slide(inputs),
    )
    dataset = "" if isinstance(inputs.dataset, Missing) else str(inputs.dataset.path)
    return Deck(
        title=intro.deck_title(inputs),
        slides=slides,
        meta={
            "run": str(run.path),
            "dataset": dataset,
            "generated": time.strftime("%Y-%m-%d", time.gmtime()),
            "tool": f"oiforge {__version__} present",
        },
    )


def make_deck(
    run: Path,
    out: Path,
    options: Options = Options(),
    *,
    pdf: bool = False,
    chromium: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> DeckResult:
    """Gather, measure (cached), write ``slides.md`` and ``index.html`` (and ``deck.pdf``)."""
    clock = time.perf_counter()
    inputs = gather(run, options, progress)
    gathered = time.perf_counter()
    inputs.assets = out / ASSETS
    inputs.assets.mkdir(parents=True, exist_ok=True)
    deck = build_deck(inputs)
    markdown = out / MARKDOWN_FILE
    write_text_atomic(markdown, render_markdown(deck))
    result = render_deck(markdown, out, pdf=pdf, chromium=chromium)
    result.missing = list(inputs.missing)
    result.measured = _measured(inputs)
    result.seconds = {
        "gather": gathered - clock,
        "render": time.perf_counter() - gathered,
        **result.seconds,
    }
    return result


def _measured(inputs: Inputs) -> dict[str, float]:
    out = {}
    if isinstance(inputs.curve, LearningCurve):
        out["learning_curve"] = inputs.curve.measured_s
    if isinstance(inputs.estimate, EstimateFacts):
        out["estimate"] = 0.0 if inputs.estimate.cached else inputs.estimate.measured_s
    return out


def render_deck(
    markdown: Path, out: Path | None = None, *, pdf: bool = False, chromium: str | None = None
) -> DeckResult:
    """``index.html`` (and ``deck.pdf``) from a deck's Markdown and its ``assets/`` folder."""
    deck = read_markdown(markdown)
    folder = out or markdown.parent
    html = folder / HTML_FILE
    write_text_atomic(html, render_html(deck, markdown.parent / ASSETS))
    result = DeckResult(folder, html, markdown, len(deck.slides))
    if pdf:
        start = time.perf_counter()
        result.pdf = print_pdf(html, folder / PDF_FILE, chromium)
        result.seconds["pdf"] = time.perf_counter() - start
    return result


def find_chromium(given: str | None) -> str:
    for candidate in (
        given,
        os.environ.get("OIFORGE_CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
    ):
        if candidate and (found := shutil.which(candidate)):
            return found
    raise StageError(
        "--pdf needs Chromium: install Debian's chromium (scripts/install-system-deps.sh) "
        "or pass --chromium PATH"
    )


def print_pdf(html: Path, pdf: Path, chromium: str | None = None) -> Path:
    """One page a slide, through headless Chromium's print engine (CSS page size 1920x1080)."""
    executable = find_chromium(chromium)
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise StageError("--pdf needs playwright: pip install 'oiforge[present]'") from exc
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(html.resolve().as_uri(), wait_until="load")
            page.emulate_media(media="print")
            data = page.pdf(prefer_css_page_size=True, print_background=True)
            browser.close()
    except PlaywrightError as exc:
        raise StageError(f"Chromium could not print {html}: {str(exc).splitlines()[0]}") from exc
    write_bytes_atomic(pdf, data)
    return pdf
