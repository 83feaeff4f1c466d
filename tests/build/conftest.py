"""Fixtures of the build tests: a small synthetic store + selection, and a build helper."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from oiforge.build import BuildInputs, BuildResult, build_dataset
from oiforge.build.synthetic import SyntheticSet, make_synthetic
from oiforge.spec import BuildSpec


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSet:
    """24 photo-like images, 2 boxes each, 3 classes, official splits 8:1:1."""
    return make_synthetic(tmp_path_factory.mktemp("synth"), 24, boxes_per_image=2)


BuildFn = Callable[..., BuildResult]


@pytest.fixture()
def build(tmp_path: Path) -> BuildFn:
    """Build a dataset into ``tmp_path/<out>`` with BuildSpec options as keywords."""

    def run(s: SyntheticSet, out: str = "ds", workers: int = 1, **options: Any) -> BuildResult:
        extra = {k: options.pop(k) for k in ("exclude", "expected_files") if k in options}
        inputs = BuildInputs(
            s.selection, s.store, tmp_path / out, BuildSpec(**options), workers=workers, **extra
        )
        return build_dataset(inputs)

    return run
