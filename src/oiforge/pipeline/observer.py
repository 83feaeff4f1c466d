"""How a run reports progress. The base class logs and draws nothing (the Python API); the
CLI's subclass draws each stage's own Rich progress (``oiforge.cli.run``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from oiforge.pipeline.results import StageResult

if TYPE_CHECKING:
    from oiforge.download import ProgressUpdate
    from oiforge.progress import Event

log = logging.getLogger(__name__)


class Observer:
    """Callbacks a run makes while it works; override any of them."""

    def stage_started(self, stage: str, why: str) -> None:
        log.info("%s: runs (%s)", stage, why)

    def stage_finished(self, result: StageResult) -> None:
        log.info("%s: %s in %.1f s", result.stage, result.summary, result.seconds)

    @contextmanager
    def status(self, text: str) -> Iterator[Callable[[str], None]]:
        """A stage working without a count (selecting, exporting); yields a re-labeller."""
        log.info("%s", text)
        yield lambda text: log.debug("%s", text)

    @contextmanager
    def download_progress(self, what: str) -> Iterator[Callable[[ProgressUpdate], None]]:  # noqa: ARG002
        """A download's progress callback (``what``: the bar's label)."""
        yield lambda _update: None

    @contextmanager
    def counter(self, what: str) -> Iterator[Callable[[int, int], None]]:  # noqa: ARG002
        """A ``(done, total)`` progress callback (build, book pages)."""
        yield lambda _done, _total: None

    def follow(self, events: Iterable[Event]) -> dict[str, Any]:
        """Consume a train/evaluate event stream; returns its final summary."""
        from oiforge.progress import Finished, Notice

        summary: dict[str, Any] = {}
        for event in events:
            if isinstance(event, Notice):
                log.log(logging.WARNING if event.level == "warning" else logging.INFO, event.text)
            elif isinstance(event, Finished):
                summary = dict(event.summary)
        return summary
