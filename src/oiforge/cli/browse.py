"""``oiforge browse`` (the local review web app) and ``oiforge pg load|select`` (PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import typer

from oiforge.cli._common import console, create_app, err_console
from oiforge.errors import InvalidInputError

_VERSION = typer.Option("v7", "--version", help="Open Images version (v4, v5, v6, v7).")
_BASE = typer.Option(None, "--metadata-base", help="Base URL of the official metadata files.")
_DSN = typer.Option(..., "--dsn", envvar="OIFORGE_PG_DSN", help="postgresql://user@host/db")


def register(app: typer.Typer) -> None:
    """Add ``browse`` and the ``pg`` group to the root app."""
    app.command("browse")(browse)
    pg = create_app("The catalog in PostgreSQL: load it with COPY, select from it.")
    pg.command("load")(pg_load)
    pg.command("select")(pg_select)
    app.add_typer(pg, name="pg")


def browse(
    selection: Path | None = typer.Argument(None, help="selection.parquet to review."),
    store: Path = typer.Option(Path("store"), "--store", help="Image store (store/<id[:2]>/)."),
    exclude_list: Path = typer.Option(
        Path("exclude.txt"), "--exclude-list", help="The exclude-list build reads."
    ),
    review: Path | None = typer.Option(
        None,
        "--review",
        help="Label review file select/build read (default: review.csv beside the exclude-list).",
    ),
    version: str = _VERSION,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8765, "--port", help="Port to listen on."),
) -> None:
    """Curate a selection in the browser: grid, filters, detail view, exclusions, label review."""
    import uvicorn

    from oiforge.browse import create_app as browse_app
    from oiforge.catalog import open_catalog

    if selection is not None and not selection.is_file():
        raise InvalidInputError(f"no selection file {selection}")
    with open_catalog(version, fetch_missing=False) as cat:
        app = browse_app(cat, store, exclude_list, selection, review)
        reviews = review or exclude_list.with_name("review.csv")
        err_console.print(
            f"browse on http://{host}:{port}/  (exclusions → {exclude_list}, reviews → {reviews})"
        )
        uvicorn.run(app, host=host, port=port, log_level="warning")


def pg_load(
    dsn: str = _DSN,
    version: str = _VERSION,
    metadata_base: str | None = _BASE,
    no_fetch: bool = typer.Option(False, "--no-fetch", help="Load only what is ingested."),
) -> None:
    """Load classes, hierarchy, images, labels and boxes into PostgreSQL (COPY; idempotent)."""
    from oiforge.catalog import open_catalog
    from oiforge.catalog.ingest import TABLE_KINDS
    from oiforge.endpoints import Endpoints
    from oiforge.postgres import load_catalog

    ep = Endpoints.from_env(metadata_base=metadata_base)
    with open_catalog(version, ep, fetch_missing=not no_fetch) as cat:
        if no_fetch:
            cat.ingest_cached(strict=False)
        else:
            cat.ensure(TABLE_KINDS)
        with console.status("loading into PostgreSQL..."):
            result = load_catalog(cat, dsn)
    for table, rows in result.rows.items():
        console.print(f"{table:>15}: {rows:,} rows")
    console.print(f"loaded into {result.dsn_host}")


def pg_select(
    classes: list[str] | None = typer.Argument(None, help="Class names or MIDs."),
    spec_file: Path | None = typer.Option(None, "--spec", help="A spec YAML (select section)."),
    dsn: str = _DSN,
    out: Path = typer.Option(Path("selection.parquet"), "--out", "-o"),
    version: str = _VERSION,
    label_mode: str = typer.Option("image", "--label-mode", help="image or box."),
    expand: bool = typer.Option(False, "--expand", help="Include sub-classes."),
) -> None:
    """Select from the PostgreSQL catalog (same rows as ``oiforge select``)."""
    from oiforge.postgres import select_pg
    from oiforge.spec import load_spec, parse_spec

    if spec_file is not None:
        spec = load_spec(spec_file)
    elif classes:
        items = [{"name": c, "expand": expand} for c in classes]
        raw = {"classes": items, "version": version, "label_mode": label_mode}
        spec = parse_spec({"select": raw}, source="options")
    else:
        raise InvalidInputError("name at least one class (or give --spec spec.yaml)")
    with console.status("selecting from PostgreSQL..."):
        result = select_pg(spec, dsn)
        result.write(out)
    console.print(f"{result.table.num_rows:,} rows → {out}")
