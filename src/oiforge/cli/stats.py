"""`oiforge stats`: label frequency, machine-label confirmation and precision, with charts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from oiforge.cli._common import console, progress_bar
from oiforge.errors import InvalidInputError

if TYPE_CHECKING:
    from oiforge.catalog import Catalog
    from oiforge.stats import LabelStats, Recommendation

_TOP = 15


def register(app: typer.Typer) -> None:
    """Add this stage's command to the root app."""
    app.command("stats")(stats_command)


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInputError(
            f"--thresholds wants numbers like 0.5,0.7,0.9, not {text!r}"
        ) from None


def stats_command(
    version: str = typer.Option("v7", "--version", help="Open Images version (v4..v7)."),
    split: str = typer.Option("train", "--split", help="train, validation, test or all."),
    out: Path = typer.Option(Path("stats"), "--out", "-o", help="Folder for CSVs and charts."),
    classes: str | None = typer.Option(
        None, "--classes", help="Comma list of classes: one --min-confidence advice each."
    ),
    thresholds: str = typer.Option(
        "0.5,0.6,0.7,0.8,0.9", "--thresholds", help="Confidence thresholds (steps of 0.01)."
    ),
    target: float = typer.Option(
        0.9, "--target-precision", min=0.0, max=1.0, help="Precision the advice must reach."
    ),
    charts: bool = typer.Option(True, "--charts/--no-charts", help="Also write PNG charts."),
    metadata_base: str | None = typer.Option(
        None, "--metadata-base", help="Base URL of the official metadata files."
    ),
    no_fetch: bool = typer.Option(False, "--no-fetch", help="Fail instead of fetching."),
) -> None:
    """Label-quality statistics of a split: label frequency (the long tail), the share of
    machine labels humans confirmed (vs frequency and confidence), and per-label precision
    at confidence thresholds, to choose `select --min-confidence` with evidence."""
    from oiforge.catalog import open_catalog
    from oiforge.endpoints import Endpoints
    from oiforge.stats import compute_stats, write_stats
    from oiforge.stats.binning import parse_thresholds
    from oiforge.stats.queries import check_split

    check_split(split)
    wanted = parse_thresholds(_floats(thresholds))
    ep = Endpoints.from_env(metadata_base=metadata_base)
    with open_catalog(version, ep, fetch_missing=not no_fetch) as cat:
        mids = [cat.resolve(c).mid for c in (classes or "").split(",") if c.strip()]
        _fetch_labels(cat, split)
        with progress_bar(transient=True) as bars:
            task = bars.add_task("machine labels x verifications (%)", total=100)
            stats = compute_stats(
                cat, split, wanted, progress=lambda p: bars.update(task, completed=p)
            )
    with console.status("writing tables and charts..."):
        files = write_stats(stats, out, mids, with_charts=charts)
    _print_summary(stats)
    for advice in stats.recommend(mids, target):
        _print_advice(advice)
    console.print(f"wrote {len(files.tables) + len(files.charts) + 1} files to {out}")


def _fetch_labels(cat: Catalog, split: str) -> None:
    """Fetch and ingest the label files with a progress bar (a no-op when cached)."""
    from oiforge.contracts import SPLITS
    from oiforge.stats.queries import splits_of

    with progress_bar(transient=True) as bars:
        tasks: dict[str, Any] = {}

        def report(p: Any) -> None:
            if p.relpath not in tasks:
                tasks[p.relpath] = bars.add_task(p.relpath.rsplit("/", 1)[-1], total=p.total)
            bars.update(tasks[p.relpath], completed=p.done, total=p.total)

        cat.ensure(["human_labels"], SPLITS, progress=report)
        cat.ensure(["machine_labels"], splits_of(split), progress=report)


def _pct(value: object) -> str:
    return "" if value is None else f"{float(value):.0%}"  # type: ignore[arg-type]


def _print_summary(stats: LabelStats) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    from rich.table import Table
    from rich.text import Text

    from oiforge.stats.write import most_verified

    head = stats.summary()
    console.print(
        f"[bold]{stats.version} {stats.split}[/]: {head['labels_with_images']:,} labels with "
        f"images; {head['machine_labels']:,} machine labels, {head['verified']:,} verified by "
        f"humans, {_pct(head['share_confirmed'])} confirmed"
    )
    top = most_verified(stats.confirmation, _TOP)
    picked = pc.is_in(stats.confirmation["label_mid"], pa.array(top, pa.string()))
    rows = {r["label_mid"]: r for r in stats.confirmation.filter(picked).to_pylist()}
    chosen = pc.is_in(stats.precision["label_mid"], pa.array(top, pa.string()))
    prec = stats.precision.filter(chosen).to_pylist()
    table = Table("class", "images", "machine", "verified", "confirmed (95% CI)",
                  *(f">= {t:g}" for t in stats.thresholds),
                  title=f"machine-label quality, {len(top)} most verified classes")  # fmt: skip
    for mid in top:
        r = rows[mid]
        ci = f"{_pct(r['share'])} ({_pct(r['ci_low'])}-{_pct(r['ci_high'])})"
        at = {p["threshold"]: _pct(p["precision"]) for p in prec if p["label_mid"] == mid}
        cells = [f"{r['images']:,}", f"{r['machine_labels']:,}", f"{r['verified']:,}", ci]
        table.add_row(Text(str(r["label_name"])), *cells, *(at[t] for t in stats.thresholds))
    console.print(table)


def _print_advice(advice: Recommendation) -> None:
    from rich.text import Text

    style = "green" if advice.threshold is not None else "yellow"
    console.print(Text(advice.text, style=style))
