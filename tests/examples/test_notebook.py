"""examples/open_sandwiches.ipynb runs top to bottom against the mirror (so it never rots)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "open_sandwiches.ipynb"


def test_open_sandwiches_notebook_runs(
    mirror: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OIFORGE_MIRROR", mirror.url)  # type: ignore[attr-defined]
    monkeypatch.setenv("OIFORGE_NOTEBOOK_WORK", str(tmp_path))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=dict(os.environ))
    assert (tmp_path / "run" / "best.safetensors").is_file()
    assert (tmp_path / "dataset" / "oiforge.lock").is_file()
