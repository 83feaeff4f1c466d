"""The ``oiforge`` command. Thin: parse options, call a stage, print the result.

Each stage's commands live in ``cli/<stage>.py`` and are added by its ``register(app)``;
stage code is imported inside the command functions so ``oiforge --help`` starts fast.
"""

from __future__ import annotations

import logging
import os

import typer

from oiforge import __version__
from oiforge.cli import (
    book,
    browse,
    build,
    catalog,
    download,
    mirror,
    present,
    run,
    serve,
    stats,
    train,
)
from oiforge.cli._common import create_app, err_console

app = create_app("Open Images into catalogs, datasets, classifiers, services and picture books.")

for _module in (run, mirror, catalog, download, build, train, serve, book, browse, stats, present):
    _module.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"oiforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    version: bool = typer.Option(  # noqa: ARG001 (handled by its eager callback)
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    level = logging.DEBUG if verbose else getattr(logging, os.environ.get("OIFORGE_LOG", "WARNING"))
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/] (rerun the same command to resume)")
        raise SystemExit(130) from None
