"""Serve fixtures: a small exported model, shared by the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_helpers import small_labels, small_model


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from oiforge.serve.export import export_model

    out = tmp_path_factory.mktemp("export")
    export_model(small_model(), small_labels(), out)  # type: ignore[arg-type]
    yield out


@pytest.fixture(scope="session")
def service(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live `oiforge serve` app (real uvicorn on 127.0.0.1) with small test limits."""
    from serve_helpers import LiveServer, wait_ready

    from oiforge.serve.app import create_app
    from oiforge.serve.runner import ServeConfig

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
