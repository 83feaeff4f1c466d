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
