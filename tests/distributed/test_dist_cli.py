"""`--backend/--shards` on the real `download` and `build` commands."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from tests.helpers.distributed import store_digest
from typer.testing import CliRunner

from oiforge.cli import app

runner = CliRunner()


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), terminal_width=120)
    assert result.exit_code == 0, result.output
    return result.output


def test_sharded_cli_download_and_build_match_the_plain_ones(
    mirror: object, sample_selection: Path, tmp_path: Path
) -> None:
    small = tmp_path / "small.parquet"
    pq.write_table(pq.read_table(sample_selection).slice(0, 60), small)
    url = mirror.url  # type: ignore[attr-defined]
    stores = []
    for name, extra in (("plain", ()), ("sharded", ("--backend", "local", "--shards", "3"))):
        store = tmp_path / name
        _invoke("download", str(small), "--out", str(store), "--mirror", url, *extra)
        stores.append(store_digest(store))
        _invoke(
            "build",
            "--selection",
            str(small),
            "--store",
            str(store),
            "--out",
            str(tmp_path / f"ds-{name}"),
            "--size",
            "64",
            "--workers",
            "1",
            *extra,
        )
    assert stores[0] == stores[1]
    locks = [(tmp_path / f"ds-{n}" / "oiforge.lock").read_text() for n in ("plain", "sharded")]
    assert locks[0] == locks[1]


def test_unknown_backend_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "download",
            str(tmp_path / "s.parquet"),
            "--out",
            str(tmp_path / "store"),
            "--backend",
            "spark",
        ],
    )
    assert result.exit_code == 2


def test_an_object_store_url_as_the_store_is_a_clear_error(
    sample_selection: Path, tmp_path: Path, monkeypatch: object
) -> None:
    """The store is a folder (SQLite journal, renames); a URL must not become a local folder
    named ``s3:``. The message names the way that works (build, then publish)."""
    monkeypatch.chdir(tmp_path)  # type: ignore[attr-defined]
    for backend in (("--backend", "local"), ("--backend", "local", "--shards", "2")):
        result = runner.invoke(
            app, ["download", str(sample_selection), "--out", "s3://bucket/store", *backend],
            terminal_width=120,
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        assert "oiforge publish" in result.output and "URL" in result.output
    assert not list(tmp_path.iterdir())
