"""`add_backend_options` gives a Typer command --backend/--ray-address/--shards."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from oiforge.cli._common import create_app
from oiforge.distributed.options import LOCAL, BackendOptions, add_backend_options

seen: list[tuple[Path, int, BackendOptions]] = []


@add_backend_options
def fake_download(
    selection: Path = typer.Argument(..., help="A selection."),
    limit: int = typer.Option(3, "--limit"),
    backend: BackendOptions = LOCAL,
) -> None:
    seen.append((selection, limit, backend))


def _app() -> typer.Typer:
    app = create_app("test")
    app.command("download")(fake_download)
    app.command("other")(lambda: None)
    return app


def test_defaults_and_values_reach_the_command() -> None:
    runner = CliRunner()
    seen.clear()
    assert runner.invoke(_app(), ["download", "sel.parquet"]).exit_code == 0
    args = ["download", "s.parquet", "--backend", "ray", "--ray-address", "auto", "--shards", "8"]
    assert runner.invoke(_app(), [*args, "--limit", "5"]).exit_code == 0
    assert seen == [
        (Path("sel.parquet"), 3, LOCAL),
        (Path("s.parquet"), 5, BackendOptions("ray", "auto", 8)),
    ]
    assert BackendOptions("ray", "auto", 8).kwargs() == {
        "backend": "ray", "address": "auto", "num_shards": 8,
    }  # fmt: skip


def test_bad_values_exit_2_with_one_line() -> None:
    runner = CliRunner()
    for bad in (["--backend", "spark"], ["--ray-address", "auto"], ["--shards", "0"]):
        result = runner.invoke(_app(), ["download", "s.parquet", *bad])
        assert result.exit_code == 2, result.output
    help_text = runner.invoke(_app(), ["download", "--help"], terminal_width=100).output
    assert "--backend" in help_text and "--ray-address" in help_text and "--shards" in help_text
