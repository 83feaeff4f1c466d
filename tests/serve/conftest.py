"""Serve fixtures: a run dir, its export (via the CLI) and a live service, per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.serve import make_run_dir


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("runs") / "cats-vs-cups")


@pytest.fixture(scope="session")
def exported(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`oiforge export RUN --out DIR` through the CLI, once per session."""
    from typer.testing import CliRunner

    from oiforge.cli import app

    out = tmp_path_factory.mktemp("export")
    result = CliRunner().invoke(app, ["export", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "parity" in result.output
    return out


@pytest.fixture(scope="session")
def service(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live `oiforge serve` app (real uvicorn on 127.0.0.1) with small test limits."""
    from tests.helpers.serve import LiveServer, wait_ready

    from oiforge.serve.app import create_app
    from oiforge.serve.holder import ServeConfig

    config = ServeConfig(
        max_upload_bytes=2_000_000,
        max_images=4,
        max_pixels=4_000_000,
        url_allow_private=True,
        url_timeout_s=3.0,
    )
    with LiveServer(create_app(exported, config, api_key="")) as server:
        wait_ready(server.url)
        yield server.url
