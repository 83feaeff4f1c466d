"""The ``oiforge`` command. Thin: parse options, call a stage, print the result.

Each stage's commands live in ``cli/<stage>.py`` and are added by its ``register(app)``;
stage code is imported inside the command functions so ``oiforge --help`` starts fast. The
console script (:func:`main`) goes one step further: for ``oiforge <command> ...`` it builds
the root app with only the stage module that owns ``<command>`` (:data:`COMMANDS`), so a
download never imports the training, book or web-app command modules. ``oiforge.cli.app``
(the whole app, for tests and scripts) is built on first use.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import import_module
from typing import Final

import typer

from oiforge import __version__

#: Stage module (``oiforge.cli.<name>``) → the top-level commands its ``register`` adds, in
#: the order of ``oiforge --help`` (a test checks this against what they really add).
COMMANDS: Final[dict[str, tuple[str, ...]]] = {
    "run": ("run",),
    "mirror": ("mirror",),
    "catalog": ("catalog", "classes", "tree", "select"),
    "download": ("download",),
    "build": ("build", "verify", "publish", "pull"),
    "train": ("train", "train-worker", "evaluate", "estimate"),
    "serve": ("export", "predict", "serve"),
    "book": ("book",),
    "browse": ("browse", "pg"),
    "stats": ("stats",),
    "present": ("present",),
}
_OWNER: Final = {command: module for module, names in COMMANDS.items() for command in names}


def build_app(modules: Iterable[str] = COMMANDS) -> typer.Typer:
    """The root app with the commands of the given stage modules (default: all of them)."""
    from oiforge.cli._common import create_app

    root = create_app(
        "Open Images into catalogs, datasets, classifiers, services and picture books."
    )
    root.callback()(_root)
    for name in modules:
        import_module(f"oiforge.cli.{name}").register(root)
    return root


@cache
def _full_app() -> typer.Typer:
    return build_app()


def __getattr__(name: str) -> typer.Typer:
    """``oiforge.cli.app``: the whole app, built once on first use."""
    if name == "app":
        return _full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def app_for(argv: Sequence[str]) -> typer.Typer:
    """The app for one command line: only the owning stage's commands when its first word
    names a command, else (help, a typo, nothing) the whole app with its full listing."""
    word = _command(argv)
    module = _OWNER.get(word) if word is not None else None
    return build_app([module]) if module is not None else _full_app()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"oiforge {__version__}")
        raise typer.Exit()


def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    version: bool = typer.Option(  # noqa: ARG001 (handled by its eager callback)
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    level = logging.DEBUG if verbose else getattr(logging, os.environ.get("OIFORGE_LOG", "WARNING"))
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


#: Commands that close every file they write before they return (``select``: the selection
#: fsynced and renamed, the in-memory catalog closed): their process may skip the interpreter's
#: teardown of the module graph (``exiting.exit_now``).
_FAST_EXIT: Final = frozenset({"download", "select"})


#: Commands whose process runs without the cyclic garbage collector (``gc.disable``): a
#: ``select`` is a short process whose Python objects are nearly all the modules it imports
#: (typer, pydantic, pyarrow, DuckDB: alive until the end) while its data lives in DuckDB and
#: Arrow, outside the collector; reference counting still frees everything else. The collector
#: would scan those imports over and over (~140 young, ~12 middle and one full collection,
#: ~35 ms of a ~0.6 s select at full size) to free nothing. See docs/catalog.md.
_NO_CYCLIC_GC: Final = frozenset({"select"})


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    from oiforge.cli._common import err_console

    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None and _command(args) in _NO_CYCLIC_GC:
        gc.disable()  # the process's own choice, as the console script; not for callers' main(...)
    try:
        app_for(args)(args, prog_name="oiforge")
    except KeyboardInterrupt:  # while the app is built (in a command, Typer exits with 130)
        err_console.print(_INTERRUPTED_TEXT)
        raise SystemExit(_INTERRUPTED) from None
    except SystemExit as done:
        if done.code == _INTERRUPTED:  # Ctrl-C in a command: Typer exits 130 and says nothing
            err_console.print(_INTERRUPTED_TEXT)
        if _command(args) in _FAST_EXIT and isinstance(done.code, int | None):
            from oiforge.exiting import exit_now

            exit_now(done.code or 0)
        raise


#: the exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it)
_INTERRUPTED: Final = 130
_INTERRUPTED_TEXT: Final = "[bold red]interrupted[/] (rerun the same command to resume)"


def _command(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)
