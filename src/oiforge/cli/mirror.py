"""`oiforge` commands of the mirror stage."""

from __future__ import annotations

from pathlib import Path

import typer

from oiforge.cli._common import console, create_app, progress_bar


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    mirror_app = create_app("A local server that impersonates the Open Images hosts.")
    mirror_app.command("serve")(serve)
    mirror_app.command("make-sample")(make_sample)
    app.add_typer(mirror_app, name="mirror")


def serve(
    root: Path = typer.Option(
        ..., "--root", help="Directory made by `oiforge mirror make-sample`."
    ),
    port: int = typer.Option(8642, "--port", help="TCP port (0 picks a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    faults: Path | None = typer.Option(
        None, "--faults", help="YAML fault rules (default: ROOT/faults.yaml when present)."
    ),
    fault: list[str] = typer.Option(
        [], "--fault", help="A fault rule GLOB=KIND[:ARG], e.g. '/flickr/*_o.jpg=410' (repeat)."
    ),
    no_faults: bool = typer.Option(False, "--no-faults", help="Ignore ROOT/faults.yaml."),
) -> None:
    """Serve ROOT as the metadata bucket, the resized-image bucket and Flickr."""
    from oiforge.mirror.faults import load_rules, parse_flag
    from oiforge.mirror.server import resolve_rules
    from oiforge.mirror.server import serve as serve_mirror

    rules = [] if no_faults else (load_rules(faults) if faults else resolve_rules(root, None))
    rules += [parse_flag(f) for f in fault]

    def ready(url: str, count: int) -> None:
        console.print(f"mirror of [bold]{root}[/] at [bold]{url}[/] ({count} fault rules)")
        console.print(f"  use it with: OIFORGE_MIRROR={url}   (Ctrl-C stops)")

    serve_mirror(root, host=host, port=port, faults=rules, on_ready=ready)


def make_sample(
    root: Path = typer.Argument(..., help="Directory to write the sample into."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same bytes."),
    scale: int | None = typer.Option(
        None, "--scale", help="Instead: full-size-shaped metadata with this many box rows."
    ),
) -> None:
    """Write the mirror sample (or, with --scale, big metadata files for benchmarks)."""
    if scale is not None:
        _make_scaled(root, seed, scale)
        return
    from oiforge.mirror.sample import make_sample as make

    with progress_bar() as bar:
        task = bar.add_task("rendering images", total=None)
        info = make(
            root, seed, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    console.print(
        f"sample in [bold]{info.root}[/]: {info.image_count} images, {info.class_count} classes "
        f"(facts: {info.facts_path.name}, faults: {info.faults_path.name})"
    )


def _make_scaled(root: Path, seed: int, rows: int) -> None:
    from oiforge.mirror.scale import make_scaled

    with console.status(f"writing {rows:,} box rows and matching files"):
        written = make_scaled(root, seed=seed, box_rows=rows)
    for relpath, (count, size) in written.items():
        console.print(f"  {relpath}: {count:,} rows, {size / 1e6:,.1f} MB")
