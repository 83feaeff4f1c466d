"""What every command shares: the consoles, error translation, progress bars.

Only the CLI prints. Library code logs and yields progress; commands draw it here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from typer._click.core import Context
from typer.core import TyperGroup

from oiforge.errors import OiforgeError

if TYPE_CHECKING:
    from rich.progress import Progress

    from oiforge.distributed import ShardEvent

console = Console()
err_console = Console(stderr=True)


class OiforgeGroup(TyperGroup):
    """A command group that turns ``OiforgeError`` into one red line and its exit code."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except OiforgeError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from exc


def create_app(help_text: str) -> typer.Typer:
    """A Typer (sub-)app with oiforge's error handling and no shell-completion noise."""
    return typer.Typer(
        cls=OiforgeGroup,
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
        rich_markup_mode="rich",
    )


def status(text: str) -> AbstractContextManager[Any]:
    """A spinner with ``text`` on stdout while a step runs, where stdout is a terminal; else
    nothing (Rich would draw nothing there either, but would still load its live display and
    start its refresh thread)."""
    return console.status(text) if console.is_terminal else nullcontext()


@contextmanager
def progress_bar(*extra_columns: Any, transient: bool = False) -> Iterator[Progress]:
    """A Rich progress bar on stderr with count, elapsed and ETA columns."""
    with make_progress(*extra_columns, transient=transient) as progress:
        yield progress


def make_progress(*extra_columns: Any, transient: bool = False) -> Progress:
    """The bar of :func:`progress_bar`, not started (``start()``/``stop()`` are the caller's).

    Rich's progress module is imported here, on first use: a command without a bar (``select``)
    does not load it."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table of text cells on stdout: Rich's box table on a terminal; elsewhere (a log, a
    pipe, CI) plain columns two spaces apart at their full width, the first left-aligned and
    the rest (counts) right-aligned, a line a row. Rich would squeeze the table into 80
    columns there, wrapping rows and cutting long class names short, and its layout takes
    ~50 ms for 50 rows (most of what a warm ``select`` spends printing)."""
    if console.is_terminal:
        from rich.table import Table
        from rich.text import Text

        table = Table(*headers)
        for row in rows:
            table.add_row(Text(row[0]), *row[1:])  # the first cell literal (no markup)
        console.print(table)
        return
    from rich.cells import cell_len

    lines = [list(headers), *(list(row) for row in rows)]
    widths = [max(cell_len(line[j]) for line in lines) for j in range(len(headers))]

    def cell(j: int, text: str) -> str:
        pad = " " * (widths[j] - cell_len(text))
        return text + pad if j == 0 else pad + text

    text = "\n".join("  ".join(cell(j, c) for j, c in enumerate(line)).rstrip() for line in lines)
    console.out(text, highlight=False)


def print_shard_event(event: ShardEvent) -> None:
    """A sharded run's news worth a line: where the shards run, and shards started again."""
    if event.kind == "backend":
        err_console.print(f"[bold]backend:[/] {event.detail}", highlight=False)
    elif event.kind == "started" and event.attempt > 1:
        err_console.print(
            f"shard {event.shard} started again (attempt {event.attempt}) on {event.host}",
            highlight=False,
        )
