"""`oiforge present`: the project presentation, generated from a run's artefacts."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from oiforge.cli._common import console, err_console


def register(app: typer.Typer) -> None:
    """Add this stage's command to the root app."""
    app.command("present")(present_command)


def present_command(
    source: Path = typer.Argument(..., help="A run folder, or a deck's slides.md to re-render."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Deck folder (default: RUN/../deck, or the slides.md's folder)."
    ),
    dataset: Path | None = typer.Option(None, "--dataset", help="Dataset (default: config's)."),
    selection: Path | None = typer.Option(
        None, "--selection", help="selection.parquet (default: the one oiforge.lock names)."
    ),
    store: Path | None = typer.Option(None, "--store", help="Image store with journal.sqlite."),
    spec: Path | None = typer.Option(None, "--spec", help="The spec YAML the selection came from."),
    pdf: bool = typer.Option(False, "--pdf", help="Also print deck.pdf (headless Chromium)."),
    learning_curve: bool = typer.Option(
        True,
        "--learning-curve/--no-learning-curve",
        help="Retrain on 25% and 50% of the training photos (cached in RUN/present/).",
    ),
    estimate: bool = typer.Option(
        True,
        "--estimate/--no-estimate",
        help="Measure `oiforge estimate` (cached in RUN/present/).",
    ),
    target: float = typer.Option(
        0.9, "--target", min=0.01, max=0.999, help="Accuracy/recall the next steps aim for."
    ),
    peak_rps: float = typer.Option(10.0, "--peak-rps", min=0.001, help="Peak load to size for."),
    usd_per_hour: float | None = typer.Option(
        None, "--usd-per-hour", min=0.0, help="Price of the machine the run trained on."
    ),
    prices: Path | None = typer.Option(None, "--prices", help="Your own price table (YAML)."),
    serve_bench: Path = typer.Option(
        Path("bench/results/bench_serve.json"),
        "--serve-bench",
        help="Measured serve capacity; when absent, the predictor is timed here.",
    ),
    chromium: str | None = typer.Option(None, "--chromium", help="Chromium for --pdf."),
) -> None:
    """Write the project presentation of a run: deck/index.html (offline slides: arrow keys,
    click, N for notes), deck/slides.md (edit it, then `oiforge present deck/slides.md`),
    deck.pdf with --pdf. Every number names the file it came from."""
    from oiforge.present import Options, make_deck, render_deck

    if source.suffix.lower() == ".md":
        if not source.is_file():
            from oiforge.errors import InvalidInputError

            raise InvalidInputError(f"no Markdown deck at {source}")
        result = render_deck(source, out, pdf=pdf, chromium=chromium)
    else:
        options = Options(
            dataset=dataset,
            selection=selection,
            store=store,
            spec=spec,
            learning_curve=learning_curve,
            estimate=estimate,
            serve_bench=serve_bench,
            prices=prices,
            usd_per_hour=usd_per_hour,
            target=target,
            peak_rps=peak_rps,
        )
        folder = out or source.resolve().parent / "deck"
        with console.status("gathering...") as status:
            result = make_deck(
                source,
                folder,
                options,
                pdf=pdf,
                chromium=chromium,
                progress=lambda text: status.update(text),
            )
    for item in result.missing:
        text = escape(f"{item.what} ({item.why}); make it with: {item.command}")
        err_console.print(
            f"[yellow]missing:[/] {text}",
            highlight=False,
            soft_wrap=True,
        )
    for name, seconds in result.measured.items():
        if seconds:
            what = name.replace("_", " ")
            console.print(f"measured {what}: {seconds:.1f} s (cached in RUN/present/)")
    where = f"{result.slides} slides → {result.html}  (source: {result.markdown})"
    console.print(where, soft_wrap=True, highlight=False)
    if result.pdf:
        console.print(f"PDF → {result.pdf}", soft_wrap=True, highlight=False)
