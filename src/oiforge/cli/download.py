"""`oiforge` commands of the download stage: ``oiforge download``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from oiforge.cli._common import console, err_console
from oiforge.distributed.options import LOCAL, BackendOptions, add_backend_options
from oiforge.errors import InvalidInputError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from oiforge.download import DownloadConfig, DownloadSummary, ProgressUpdate


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("download")(add_backend_options(download_command))


def download_command(
    selection: Path | None = typer.Argument(None, help="selection.parquet from `oiforge select`."),
    out: Path | None = typer.Option(None, "--out", "-o", help="The store folder."),
    status: Path | None = typer.Option(None, "--status", help="Print counts by status of STORE."),
    verify: Path | None = typer.Option(
        None,
        "--verify",
        help="Re-check STORE's files (journal sha256; with SELECTION also "
        "OriginalMD5); remove bad ones and mark them for the next run to fetch again.",
    ),
    remote: bool = typer.Option(
        False,
        "--remote",
        help="With --verify: also ask the server (HEAD) for the MD5 of "
        "each resized copy stored as fetched.",
    ),
    sources: str = typer.Option(
        "resized,original,thumbnail", "--sources", help="Sources in fallback order."
    ),
    max_side: int | None = typer.Option(None, "--max-side", help="Resize: longest side in px."),
    jpeg_quality: int = typer.Option(90, "--jpeg-quality", help="JPEG quality when resizing."),
    max_bytes: int = typer.Option(50 * 1024 * 1024, "--max-bytes", help="Largest body accepted."),
    connections: int = typer.Option(64, "--connections", help="Connections in flight, all hosts."),
    per_host: int = typer.Option(32, "--per-host", help="Connections in flight per host."),
    rate: float | None = typer.Option(None, "--rate-per-host", help="Requests/s per host."),
    timeout: float = typer.Option(120.0, "--timeout", help="Total seconds per request."),
    connect_timeout: float = typer.Option(10.0, "--connect-timeout", help="Seconds to connect."),
    read_timeout: float = typer.Option(30.0, "--read-timeout", help="Seconds without bytes."),
    retries: int = typer.Option(3, "--retries", help="Retries per URL on 5xx/timeouts."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Retry permanent failures."),
    workers: int | None = typer.Option(
        None, "--workers", help="Processes for resizing (default 0: threads)."
    ),
    processes: int = typer.Option(
        0, "--processes", help="Fetch processes (0: auto, up to 4 on a large run)."
    ),
    limit: int | None = typer.Option(None, "--limit", help="Fetch at most N images this run."),
    mirror: str | None = typer.Option(None, "--mirror", help="Fetch from an `oiforge mirror`."),
    images_base: str | None = typer.Option(None, "--images-base", help="Resized-image bucket."),
    flickr_base: str | None = typer.Option(None, "--flickr-base", help="Flickr rewrite base."),
    backend: BackendOptions = LOCAL,
) -> None:
    """Fetch every selected image into a store, verified, with a journal; rerun to resume."""
    if status is not None:
        _print_status(status)
        return
    if verify is None and (selection is None or out is None):
        raise InvalidInputError(
            "give SELECTION and --out STORE (or --status STORE, or --verify STORE)"
        )
    if remote and verify is None:
        raise InvalidInputError("--remote goes with --verify STORE")
    from oiforge.download import DownloadConfig

    cfg_args: dict[str, Any] = {
        "sources": tuple(s.strip() for s in sources.split(",") if s.strip()),
        "max_side": max_side, "jpeg_quality": jpeg_quality, "max_bytes": max_bytes,
        "connections": connections, "per_host": per_host, "rate_per_host": rate,
        "total_timeout_s": timeout, "connect_timeout_s": connect_timeout,
        "read_timeout_s": read_timeout, "retries": retries, "retry_failed": retry_failed,
        "processes": processes, "limit": limit,
    }  # fmt: skip
    if workers is not None:
        cfg_args["workers"] = workers
    config = DownloadConfig(**cfg_args)
    if verify is not None:
        _verify(verify, selection, remote, config)
        return
    assert selection is not None and out is not None
    endpoints = _endpoints(mirror, images_base, flickr_base)
    summary = _run(selection, out, config, endpoints, backend)
    _print_summary(summary, out)
    if summary.stopped:
        err_console.print(f"[bold red]stopped early:[/] {summary.stopped}", highlight=False)
        raise typer.Exit(1)


def _endpoints(mirror: str | None, images_base: str | None, flickr_base: str | None) -> Any:
    from oiforge.endpoints import Endpoints

    if mirror:
        return Endpoints.for_mirror(mirror)
    return Endpoints.from_env(images_base=images_base, flickr_base=flickr_base)


def _run(
    selection: Path, out: Path, config: DownloadConfig, endpoints: Any, backend: BackendOptions
) -> DownloadSummary:
    with download_bar("download") as updater:
        if backend.is_sharded:
            from oiforge.cli._common import print_shard_event
            from oiforge.distributed import run_download_sharded

            return run_download_sharded(
                selection, out, config, endpoints, progress=updater,
                on_event=print_shard_event, **backend.kwargs(),
            )  # fmt: skip
        from oiforge.download import download

        return download(selection, out, config, endpoints, progress=updater)


@contextmanager
def download_bar(what: str) -> Iterator[Callable[[ProgressUpdate], None]]:
    """The download's progress bar (``download`` and ``oiforge run``), drawn from the first
    update on: its refresh thread starts after the fetch processes are forked (a fork is made
    only from a process without other threads, so a bar started earlier meant one process)."""
    from rich.progress import TextColumn

    from oiforge.cli._common import make_progress

    bar = make_progress(TextColumn("{task.fields[rates]}"), TextColumn("{task.fields[fails]}"))
    updater = _Updater(bar, bar.add_task(what, total=None, rates="", fails=""))
    try:
        yield updater
    finally:
        if updater.started:
            bar.refresh()
            bar.stop()


class _Updater:
    """Draws at most ~10 updates a second from the download's progress callback."""

    def __init__(self, bar: Progress, task: TaskID) -> None:
        self._bar, self._task, self._last = bar, task, 0.0
        self.started = False

    def __call__(self, update: ProgressUpdate) -> None:
        if not self.started:
            self._bar.start()
            self.started = True
        if update.done < update.total and update.elapsed_s - self._last < 0.1:
            return
        self._last = update.elapsed_s
        secs = max(update.elapsed_s, 1e-6)
        rates = f"{update.done / secs:,.0f} img/s {update.bytes / 1e6 / secs:,.1f} MB/s"
        fails = ", ".join(f"{k} {v}" for k, v in sorted(update.failures.items()))
        self._bar.update(
            self._task, total=update.total, completed=update.done, rates=rates,
            fails=f"[red]{fails}[/]" if fails else "",
        )  # fmt: skip


def _print_summary(summary: DownloadSummary, out: Path) -> None:
    from rich.table import Table

    table = Table(title=f"download → {out}", show_edge=False)
    table.add_column("status")
    table.add_column("this run", justify="right")
    table.add_column("journal (all runs)", justify="right")
    for name in sorted(set(summary.statuses) | set(summary.journal)):
        table.add_row(name, str(summary.statuses.get(name, 0)), str(summary.journal.get(name, 0)))
    console.print(table)
    rate = summary.attempted / summary.duration_s if summary.duration_s else 0.0
    sources = ", ".join(f"{k} {v}" for k, v in sorted(summary.sources.items())) or "-"
    console.print(
        f"{summary.selected} selected, {summary.skipped} skipped (done before), "
        f"{summary.attempted} fetched in {summary.duration_s:.1f} s ({rate:,.0f} img/s, "
        f"{summary.processes} fetch process{'es' if summary.processes > 1 else ''}, "
        f"{summary.bytes / 1e6:,.1f} MB); sources: {sources}; "
        f"{summary.invalid_ids} malformed ImageIDs",
        highlight=False,
    )
    if summary.adopted:
        console.print(
            f"adopted {summary.adopted} images an interrupted run had stored (hash checked) "
            "but not yet journaled",
            highlight=False,
        )


def _print_status(store: Path) -> None:
    from rich.table import Table

    from oiforge.download import status_counts

    counts = status_counts(store)
    table = Table(title=f"journal of {store}", show_edge=False)
    table.add_column("status")
    table.add_column("images", justify="right")
    for name, n in counts.items():
        table.add_row(name, str(n))
    table.add_row("[bold]total[/]", f"[bold]{sum(counts.values())}[/]")
    console.print(table)


def _verify(store: Path, selection: Path | None, remote: bool, config: DownloadConfig) -> None:
    from oiforge.cli._common import progress_bar
    from oiforge.download import verify_store

    with progress_bar() as bar:
        task = bar.add_task("verify", total=None)
        check = verify_store(
            store, selection, remote=remote, config=config,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )  # fmt: skip
    unchecked = ", ".join(f"{k} {v}" for k, v in sorted(check.unchecked.items()))
    note = f" (source MD5 not checkable: {unchecked})" if unchecked else ""
    if check.ok:
        console.print(f"[bold green]ok[/] {store}: {check.checked} stored images verified{note}")
        return
    for kind, ids in sorted(check.bad.items()):
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        err_console.print(f"[red]{kind}[/] {len(ids)}: {shown}", highlight=False)
    err_console.print(
        f"{check.marked} of {check.checked} stored images were bad{note}: removed and marked "
        "`error` in the journal; rerun `oiforge download SELECTION --out STORE` to fetch them "
        "again",
        highlight=False,
    )
    raise typer.Exit(1)
