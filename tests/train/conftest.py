"""Fixtures for the train and evaluate tests: tiny Pillow-drawn datasets and trained runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from .synthetic import make_dataset


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x (16 train, 6 val, 6 test) images of 96x80 px, with classes.json."""
    return make_dataset(tmp_path_factory.mktemp("tiny") / "ds")


@pytest.fixture(scope="session")
def probe_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished probe run (64 px, 6 epochs) shared by the read-only tests."""
    from oiforge.train import build_config, train

    out = tmp_path_factory.mktemp("runs") / "probe"
    config = build_config(
        dataset=str(tiny_dataset), out=str(out), image_size=64, epochs=6, workers=0
    )
    train(config)
    return out
