"""``oiforge pg load|select`` through the CLI, on the mirror sample (real server, real mirror)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from oiforge.cli._common import create_app
from oiforge.cli.browse import register

app = create_app("test root")
register(app)
runner = CliRunner()


@pytest.mark.slow
def test_load_and_select_the_mirror_sample(
    pg_dsn: str, mirror: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oiforge.catalog import open_catalog, select
    from oiforge.endpoints import Endpoints
    from oiforge.spec import SelectSpec

    monkeypatch.setenv("OIFORGE_MIRROR", mirror.url)  # type: ignore[attr-defined]
    res = runner.invoke(app, ["pg", "load", "--dsn", pg_dsn])
    assert res.exit_code == 0, res.output
    out = tmp_path / "pg.parquet"
    args = ["pg", "select", "Cat", "Dog", "--label-mode", "box", "--dsn", pg_dsn, "-o", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    ep = Endpoints.for_mirror(mirror.url)  # type: ignore[attr-defined]
    with open_catalog("v7", ep) as cat:
        duck = select(SelectSpec(classes=("Cat", "Dog"), label_mode="box"), catalog=cat)
    got = pq.read_table(out)
    # the CLI builds its spec from options, so only spec_hash may differ from this one
    a, b = (t.drop_columns(["spec_hash"]).to_pylist() for t in (got, duck.table))
    assert got.num_rows > 0 and len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x == y, {k: (x[k], y[k]) for k in x if x[k] != y[k]}


def test_wrong_dsn_is_one_line_exit_2() -> None:
    dsn = "postgresql://bob:hunter22@127.0.0.1:1/db"
    res = runner.invoke(app, ["pg", "select", "Cat", "--dsn", dsn])
    assert res.exit_code == 2
    assert "127.0.0.1:1" in res.output and "hunter22" not in res.output


@pytest.mark.slow
def test_catalog_to_postgres_and_select_catalog_aliases(
    pg_dsn: str, mirror: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oiforge.cli import app as root

    monkeypatch.setenv("OIFORGE_MIRROR", mirror.url)  # type: ignore[attr-defined]
    res = runner.invoke(root, ["catalog", "to-postgres", "--dsn", pg_dsn])
    assert res.exit_code == 0, res.output
    outs = [tmp_path / "duck.parquet", tmp_path / "pg.parquet"]
    for out, extra in zip(outs, ([], ["--catalog", pg_dsn]), strict=True):
        res = runner.invoke(root, ["select", "Zebra", "Apple", "-o", str(out), *extra])
        assert res.exit_code == 0, res.output
    duck, pg = (pq.read_table(p).to_pylist() for p in outs)
    assert duck and duck == pg


def test_select_catalog_refuses_a_non_postgres_url(tmp_path: Path) -> None:
    from oiforge.cli import app as root

    res = runner.invoke(root, ["select", "Cat", "--catalog", "mysql://u:secret@db/x"])
    assert res.exit_code == 2 and "secret" not in res.output
