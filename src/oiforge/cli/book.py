"""`oiforge book`: plan -> download -> render an A-Z picture book (or one step at a time)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from oiforge.cli._common import OiforgeGroup, console, err_console, progress_bar

if TYPE_CHECKING:
    from oiforge.book import BookPlan, PlanRequest, RenderResult

_OUT = typer.Option(Path("book-out"), "--out", "-o", help="Folder for book.json, PDFs, store.")
_CONFIG = typer.Option(None, "--config", help="Book settings YAML (see examples/book.yaml).")
_VERSION = typer.Option(None, "--version", help="Open Images version (default v7).")
_PICK = typer.Option(None, "--pick", help="Pin classes: A=Apple,B=Bird.")
_SKIP = typer.Option(None, "--skip", help="Letters to leave out: X,Q.")
_CUSTOM = typer.Option(None, "--custom", help="Own photos: NAME=FOLDER (repeatable).")
_OVERRIDES = typer.Option(None, "--overrides", help="Review file: drop/force ImageIDs.")
_MODE = typer.Option(None, "--label-mode", help="image (whole photos) or box (crop objects).")
_DEPICT = typer.Option(None, "--allow-depictions/--no-depictions", help="Drawings allowed?")
_CCBY = typer.Option(None, "--cc-by-only", help="Only photos under a plain CC BY licence.")
_SEED = typer.Option(None, "--seed", help="Seed for photo order ties.")
_TITLE = typer.Option(None, "--title", help="Book title.")
_SUBTITLE = typer.Option(None, "--subtitle", help="Subtitle (cover, title page).")
_AUTHOR = typer.Option(None, "--author", help="Author line.")
_TRIM = typer.Option(None, "--trim", help="Trim size: 8.5x8.5 (default), 8x10, A4, 210x297mm.")
_BLEED = typer.Option(None, "--bleed/--no-bleed", help="Add 0.125 in bleed on every side.")
_SPINE = typer.Option(None, "--spine", help="Spine width in inches: cover.pdf as one wrap.")
_SPREAD = typer.Option(None, "--spread/--one-page", help="Two facing pages per letter.")
_MAXP = typer.Option(None, "--max-photos", help="Most photos per letter: 1, 4, 9, 16 or 25.")
_GRID = typer.Option(None, "--grid", help="Fix every letter's grid: 3 (3x3), 4 or 5 (0: auto).")
_MINDPI = typer.Option(None, "--min-dpi", help="Warn below this resolution (default 300).")
_PRESET = typer.Option(None, "--preset", help="Print service rules: lulu or kdp.")
_PAPER = typer.Option(None, "--paper", help="The preset's paper (spine width), e.g. cream.")
_COMMERCIAL = typer.Option(None, "--commercial", help="Leave out non-commercial licences.")
_ND = typer.Option(None, "--no-derivatives", help="ND photos: fit (whole, default) or omit.")
_DEDICATION = typer.Option(None, "--dedication", help="A line on the title page.")
_MIRROR = typer.Option(None, "--mirror", help="Use an `oiforge mirror` for metadata and images.")
_SOURCES = typer.Option("original,resized,thumbnail", "--sources", help="Download sources.")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    book_app = typer.Typer(
        cls=OiforgeGroup,
        help="An A-Z picture book of Open Images photos (runs plan, download, render).",
        invoke_without_command=True,
        no_args_is_help=False,
        add_completion=False,
        rich_markup_mode="rich",
    )
    book_app.callback()(book_all)
    book_app.command("plan")(plan_command)
    book_app.command("render")(render_command)
    book_app.command("check")(check_command)
    app.add_typer(book_app, name="book")


def _flags(**kw: Any) -> dict[str, Any]:
    flags = dict(kw)
    if flags.pop("allow_depictions", None) is not None:
        flags["exclude_depictions"] = not kw["allow_depictions"]
    if kw.get("spine") is not None:
        flags["spine_in"] = flags.pop("spine")
    flags.pop("spine", None)
    return flags


def _request(config: Path | None, **kw: Any) -> PlanRequest:
    from oiforge.book import build_request, load_config

    return build_request(load_config(config), _flags(**kw))


def _endpoints(mirror: str | None) -> Any:
    from oiforge.endpoints import Endpoints

    return Endpoints.for_mirror(mirror) if mirror else Endpoints.from_env()


def _plan(request: PlanRequest, mirror: str | None, out: Path) -> BookPlan:
    from oiforge.book import plan_from_catalog, write_plan, write_selection

    with console.status("planning: classes and people-free photos ..."):
        plan = plan_from_catalog(request, _endpoints(mirror))
    write_plan(plan, out / "book.json")
    rows = write_selection(plan, out / "selection.parquet")
    _print_plan(plan)
    console.print(f"plan → {out / 'book.json'}; {rows} photos → {out / 'selection.parquet'}")
    return plan


def _print_plan(plan: BookPlan) -> None:
    from rich.table import Table

    table = Table(show_edge=False)
    for col in ("letter", "class", "positives", "photos"):
        table.add_column(col)
    for e in plan.letters:
        table.add_row(e.letter, e.class_name, str(e.positives), str(len(e.photos)))
    for letter, why in sorted(plan.skipped.items()):
        table.add_row(letter, f"[dim]skipped: {why}[/]", "", "")
    console.print(table)
    for note in plan.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)


def _render(plan: BookPlan, out: Path, store: Path | None) -> RenderResult:
    from oiforge.book import render_book

    with progress_bar() as bar:
        task = bar.add_task("render", total=len(plan.letters))
        result = render_book(plan, out, store, on_letter=lambda _l: bar.advance(task))
    _print_render(result)
    return result


def _print_render(result: RenderResult) -> None:
    dropped = [d for d in result.dropped if d.reason != "not needed"]
    for d in dropped[:20]:
        err_console.print(
            f"[yellow]dropped[/] {d.letter} {d.image_id}: {d.reason}", highlight=False
        )
    if len(dropped) > 20:
        err_console.print(f"[yellow]... and {len(dropped) - 20} more dropped photos[/]")
    for p in result.low_dpi[:20]:
        where = "front cover" if p.page == 0 else f"page {p.page}"
        err_console.print(
            f"[yellow]low resolution:[/] {p.image_id} on {where} prints at {p.dpi:.0f} dpi "
            f"(< {result.min_dpi}); download the original or use a denser grid",
            highlight=False,
        )
    if len(result.low_dpi) > 20:
        err_console.print(f"[yellow]... and {len(result.low_dpi) - 20} more below min dpi[/]")
    for note in result.text_notes[:20]:
        err_console.print(f"[yellow]text:[/] {note}", highlight=False)
    extra = f", {result.blank_pages} blank" if result.blank_pages else ""
    spine = f", spine {result.spine_in:.3f} in" if result.spine_in is not None else ""
    console.print(
        f"{result.pages} pages{extra}{spine}, {result.printed} photos, letters "
        f"{''.join(result.letters)} → {result.path('interior.pdf')}, "
        f"{result.path('cover.pdf')}, {result.path('attribution.json')}",
        highlight=False,
    )


def _download(out: Path, mirror: str | None, sources: str) -> None:
    from oiforge.download import DownloadConfig, download

    srcs: Any = tuple(s.strip() for s in sources.split(",") if s.strip())
    with progress_bar() as bar:
        task = bar.add_task("download", total=None)

        def report(update: Any) -> None:
            bar.update(task, total=update.total, completed=update.done)

        summary = download(
            out / "selection.parquet", out / "store", DownloadConfig(sources=srcs),
            _endpoints(mirror), progress=report,
        )  # fmt: skip
    console.print(_download_line(summary.statuses))


def _download_line(statuses: dict[str, int]) -> str:
    """``download: 322 ok, failed: placeholder 4, http_410 2`` (most first; or ``none``)."""
    fails = sorted(
        ((n, k) for k, n in statuses.items() if k != "ok" and n), key=lambda t: (-t[0], t[1])
    )
    failed = ", ".join(f"{k} {n:,}" for n, k in fails) or "none"
    return f"download: {statuses.get('ok', 0):,} ok, failed: {failed}"


def book_all(
    ctx: typer.Context,
    out: Path = _OUT, config: Path | None = _CONFIG, version: str | None = _VERSION,
    pick: str | None = _PICK, skip: str | None = _SKIP, custom: list[str] | None = _CUSTOM,
    overrides: Path | None = _OVERRIDES, label_mode: str | None = _MODE,
    allow_depictions: bool | None = _DEPICT, cc_by_only: bool | None = _CCBY,
    seed: int | None = _SEED, title: str | None = _TITLE, subtitle: str | None = _SUBTITLE,
    author: str | None = _AUTHOR, trim: str | None = _TRIM, bleed: bool | None = _BLEED,
    spine: float | None = _SPINE, max_photos: int | None = _MAXP, grid: int | None = _GRID,
    min_dpi: int | None = _MINDPI, preset: str | None = _PRESET, paper: str | None = _PAPER,
    commercial: bool | None = _COMMERCIAL, no_derivatives: str | None = _ND,
    dedication: str | None = _DEDICATION, spread: bool | None = _SPREAD,
    mirror: str | None = _MIRROR, sources: str = _SOURCES,
) -> None:  # fmt: skip
    """Plan, download and render the whole book into OUT (or run one step: plan, render)."""
    if ctx.invoked_subcommand is not None:
        return
    request = _request(
        config, version=version, pick=pick, skip=skip, custom=custom or None,
        overrides=str(overrides) if overrides else None, label_mode=label_mode,
        allow_depictions=allow_depictions, cc_by_only=cc_by_only, seed=seed, title=title,
        subtitle=subtitle, author=author, trim=trim, bleed=bleed, spine=spine,
        max_photos=max_photos, grid=grid, min_dpi=min_dpi, preset=preset, paper=paper,
        commercial=commercial, no_derivatives=no_derivatives, dedication=dedication,
        spread=spread,
    )  # fmt: skip
    plan = _plan(request, mirror, out)
    _download(out, mirror, sources)
    _render(plan, out, out / "store")


def plan_command(
    out: Path = _OUT, config: Path | None = _CONFIG, version: str | None = _VERSION,
    pick: str | None = _PICK, skip: str | None = _SKIP, custom: list[str] | None = _CUSTOM,
    overrides: Path | None = _OVERRIDES, label_mode: str | None = _MODE,
    allow_depictions: bool | None = _DEPICT, cc_by_only: bool | None = _CCBY,
    seed: int | None = _SEED, title: str | None = _TITLE, subtitle: str | None = _SUBTITLE,
    author: str | None = _AUTHOR, trim: str | None = _TRIM, bleed: bool | None = _BLEED,
    spine: float | None = _SPINE, max_photos: int | None = _MAXP, grid: int | None = _GRID,
    min_dpi: int | None = _MINDPI, preset: str | None = _PRESET, paper: str | None = _PAPER,
    commercial: bool | None = _COMMERCIAL, no_derivatives: str | None = _ND,
    dedication: str | None = _DEDICATION, spread: bool | None = _SPREAD,
    mirror: str | None = _MIRROR,
) -> None:  # fmt: skip
    """Choose classes and photos: OUT/book.json and OUT/selection.parquet (for download)."""
    request = _request(
        config, version=version, pick=pick, skip=skip, custom=custom or None,
        overrides=str(overrides) if overrides else None, label_mode=label_mode,
        allow_depictions=allow_depictions, cc_by_only=cc_by_only, seed=seed, title=title,
        subtitle=subtitle, author=author, trim=trim, bleed=bleed, spine=spine,
        max_photos=max_photos, grid=grid, min_dpi=min_dpi, preset=preset, paper=paper,
        commercial=commercial, no_derivatives=no_derivatives, dedication=dedication,
        spread=spread,
    )  # fmt: skip
    _plan(request, mirror, out)


def render_command(
    folder: Path = typer.Argument(Path("book-out"), help="The folder `book plan` wrote."),
    plan_file: Path | None = typer.Option(None, "--plan", help="book.json (default FOLDER's)."),
    store: Path | None = typer.Option(None, "--store", help="Image store (default FOLDER/store)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default FOLDER)."),
) -> None:
    """Print the book: interior.pdf, cover.pdf, attribution.json and the final book.json."""
    from oiforge.book import read_plan

    plan = read_plan(plan_file or folder / "book.json")
    _render(plan, out or folder, store or folder / "store")


def check_command(
    pdf: Path = typer.Argument(..., help="interior.pdf (or any PDF) to check."),
    preset: str | None = typer.Option(None, "--preset", help="Check a service's rules: lulu, kdp."),
    min_dpi: int | None = typer.Option(None, "--min-dpi", help="Lowest image dpi (default 300)."),
) -> None:
    """Report page boxes, fonts and image resolutions; exit 1 when a rule is broken."""
    from rich.table import Table

    from oiforge.book import check_pdf
    from oiforge.book.layout import resolve_preset

    report = check_pdf(pdf, resolve_preset(preset) if preset else None, min_dpi)
    first = report.pages[0] if report.pages else None
    if first is not None:
        console.print(
            f"{len(report.pages)} pages; page 1 MediaBox {_box(first.media)}, BleedBox "
            f"{_box(first.bleed)}, TrimBox {_box(first.trim)}",
            highlight=False,
        )
    fonts = ", ".join(f"{f.name} ({'embedded' if f.embedded else 'NOT embedded'})"
                      for f in report.fonts)  # fmt: skip
    console.print(f"fonts: {fonts or 'none'}", highlight=False)
    table = Table(show_edge=False)
    for col in ("rule", "ok", "detail"):
        table.add_column(col)
    for rule in report.rules:
        table.add_row(rule.name, "[green]yes[/]" if rule.ok else "[red]NO[/]", rule.detail)
    console.print(table)
    if not report.ok:
        raise typer.Exit(1)


def _box(box: tuple[float, float, float, float]) -> str:
    return "[" + " ".join(f"{v:.1f}" for v in box) + "]"
