"""Fixtures for the train and evaluate tests: tiny Pillow-drawn datasets and trained runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .synthetic import make_dataset


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: the suite shares 2 cores with other tests, and OpenMP spinning
    on an oversubscribed machine is many times slower than a single thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
        dataset=str(tiny_dataset), out=str(out), mode="probe", image_size=64, epochs=6, workers=0
    )
    train(config)
    return out


@pytest.fixture(scope="session")
def multilabel_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes, 24/10/10 photos with 1-2 classes each, most other labels verified absent,
    some drawn but never verified (tests/helpers/multilabel.py)."""
    from tests.helpers.multilabel import make_multilabel_dataset

    return make_multilabel_dataset(tmp_path_factory.mktemp("ml") / "ds", hidden_rate=0.15)


@pytest.fixture(scope="session")
def multilabel_run(multilabel_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished multi-label linear probe (64 px) shared by the read-only tests."""
    from oiforge.train import build_config, train

    out = tmp_path_factory.mktemp("runs") / "ml-probe"
    config = build_config(
        dataset=str(multilabel_dataset), out=str(out), mode="probe", image_size=64,
        epochs=6, workers=0, batch_size=16,
    )  # fmt: skip
    train(config)
    return out
