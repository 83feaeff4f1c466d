"""The Rich progress of ``oiforge run``: each stage drawn the way its own command draws it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from oiforge.cli._common import console, err_console, progress_bar
from oiforge.pipeline import Observer, StageResult

if TYPE_CHECKING:
    from oiforge.download import ProgressUpdate
    from oiforge.progress import Event


class RichObserver(Observer):
    """Draws each stage the way its own command does (see ``oiforge.pipeline.Observer``)."""

    def stage_started(self, stage: str, why: str) -> None:
        console.rule(f"[bold cyan]{stage}[/] [dim]({why})[/]", align="left")

    def stage_finished(self, result: StageResult) -> None:
        if result.ran:
            console.print(
                f"[green]{result.stage}[/] {result.seconds:.1f} s: {result.summary}",
                highlight=False,
            )

    @contextmanager
    def status(self, text: str) -> Iterator[Callable[[str], None]]:
        with err_console.status(f"{text}...") as status:
            yield lambda more: status.update(more)

    @contextmanager
    def download_progress(self, what: str) -> Iterator[Callable[[ProgressUpdate], None]]:
        from oiforge.cli.download import download_bar

        with download_bar(what) as updater:
            yield updater

    @contextmanager
    def counter(self, what: str) -> Iterator[Callable[[int, int], None]]:
        with progress_bar() as bar:
            task = bar.add_task(what, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)

    def follow(self, events: Iterable[Event]) -> dict[str, Any]:
        from oiforge.cli.train import _draw

        return _draw(events)
