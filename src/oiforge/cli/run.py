"""`oiforge run SPEC`: every stage of a spec, each only when its inputs changed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from oiforge.cli._common import console

if TYPE_CHECKING:
    from oiforge.pipeline import RunResult

_STAGES = "select, download, build, train, evaluate, export, book, present"


def register(app: typer.Typer) -> None:
    """Add this command to the root app."""
    app.command("run")(run_command)


def run_command(
    spec: Path = typer.Argument(..., help="The spec YAML (every section: docs/spec.md)."),
    until: str | None = typer.Option(None, "--until", help=f"Stop after this stage ({_STAGES})."),
    from_stage: str | None = typer.Option(
        None, "--from", help="Start at this stage; the earlier ones must have run."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would run and why."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Working folder (default: the spec's workdir:, or ./SPEC_STEM)."
    ),
) -> None:
    """Run the whole pipeline of a spec (select → download → build → train → evaluate → export,
    then book and present when the spec has those sections) in one working folder; each stage
    runs only when its settings, inputs or outputs changed since its last success."""
    from oiforge.cli._observer import RichObserver
    from oiforge.pipeline import run

    result = run(
        spec, out=out, until=until, from_stage=from_stage, dry_run=dry_run,
        observer=RichObserver(),
    )  # fmt: skip
    if dry_run:
        typer.echo(dry_run_text(result, spec, out))
        return
    _print_stages(result)
    _print_artefacts(result)


def dry_run_text(result: RunResult, spec: Path, out: Path | None) -> str:
    """The plain text of ``--dry-run`` (stable: a golden file holds it)."""
    where = out if out is not None else _shown(result.workdir)
    lines = [f"oiforge run {spec} in {where} (dry run)"]
    for s in result.stages:
        lines.append(f"  {s.stage:<9} {s.action:<4}  {s.why}")
    runs = sum(1 for s in result.stages if s.action == "run")
    lines.append(
        "nothing to do" if not runs else f"{runs} of {len(result.stages)} stages would run"
    )
    return "\n".join(lines)


def _shown(path: Path) -> str:
    """A path relative to the current folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _print_stages(result: RunResult) -> None:
    from rich.table import Table

    table = Table(title=f"oiforge run → {_shown(result.workdir)}", show_edge=False)
    for col in ("stage", "", "why", "seconds", "result"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    marks = {"run": "[green]ran[/]", "skip": "[dim]up to date[/]", "off": "[dim]off[/]"}
    for s in result.stages:
        why = "" if s.action == "skip" else s.why
        seconds = f"{s.seconds:.1f}" if s.ran else ""
        table.add_row(s.stage, marks[s.action], why, seconds, s.summary)
    console.print(table)


def _print_artefacts(result: RunResult) -> None:
    from rich.table import Table

    table = Table(title="artefacts", show_edge=False)
    for col in ("path", "size", "what"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for a in result.artefacts:
        table.add_row(_shown(a.path), _human(a.size), a.what)
    console.print(table)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return f"{value:,.1f} TB"
