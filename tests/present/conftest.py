"""The demo's pipeline, run once per session against the mirror sample, and its deck.

``demo_root`` holds what `make demo` makes (spec.yaml, selection.parquet, store/, dataset/,
run/ trained, evaluated and exported), through the real CLI in-process, smaller (96 px, batch
8: the estimate present measures runs a few batches of it); ``deck`` is ``oiforge present`` of
that run with the learning curve, the estimate and the PDF.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from present_helpers import cli

SPEC = """\
# the demo's selection: six classes, human-verified labels, no photo that shows a person
classes: [Apple, Cat, Dog, Zebra, Strawberry, Penguin]
exclude_images_with: [Person, Human face]
"""


@pytest.fixture(scope="session")
def demo_root(mirror: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("present-demo")
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("OIFORGE_")]:
            mp.delenv(key)
        mp.setenv("OIFORGE_HOME", str(root / "home"))
        mp.setenv("OIFORGE_MIRROR", mirror.url)  # type: ignore[attr-defined]
        (root / "spec.yaml").write_text(SPEC, encoding="utf-8")
        sel, store, dataset, run = (
            root / n for n in ("selection.parquet", "store", "dataset", "run")
        )
        cli("catalog", "fetch", "--version", "v7")
        cli("select", "--spec", root / "spec.yaml", "--out", sel)
        cli("download", sel, "--out", store, "--max-side", "256")
        cli("build", "--selection", sel, "--store", store, "--out", dataset,
            "--format", "folders", "--format", "webdataset", "--size", "96")  # fmt: skip
        cli("train", dataset, "--out", run, "--mode", "probe", "--image-size", "96",
            "--epochs", "8", "--batch-size", "8", "--workers", "0")  # fmt: skip
        cli("evaluate", run, "--workers", "0")
        cli("export", run)
        yield root


@pytest.fixture(scope="session")
def deck(demo_root: Path) -> Path:
    """``oiforge present RUN --pdf`` (learning curve and estimate measured, then cached)."""
    out = demo_root / "deck"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OIFORGE_HOME", str(demo_root / "home"))
        cli("present", demo_root / "run", "--out", out, "--pdf",
            "--serve-bench", demo_root / "no-bench.json")  # fmt: skip
    return out


@pytest.fixture(scope="session")
def auto_deck(demo_root: Path) -> Path:
    """``oiforge train --mode auto`` on the demo's dataset (a short budget: some candidates
    finish, the rest are skipped), then ``oiforge present`` of it (nothing measured)."""
    run, out = demo_root / "run-auto", demo_root / "deck-auto"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OIFORGE_HOME", str(demo_root / "home"))
        cli("train", demo_root / "dataset", "--out", run, "--mode", "auto", "--max-minutes",
            "0.25", "--image-size", "96", "--batch-size", "8", "--workers", "0")  # fmt: skip
        cli("evaluate", run, "--workers", "0")
        cli("present", run, "--out", out, "--no-learning-curve", "--no-estimate",
            "--serve-bench", demo_root / "no-bench.json")  # fmt: skip
    return out


@pytest.fixture()
def run_copy(demo_root: Path, tmp_path: Path) -> Path:
    """A copy of the demo's run (without its cached measurements) to break or trim."""
    run = tmp_path / "run"
    shutil.copytree(
        demo_root / "run", run, ignore=shutil.ignore_patterns("present", "*.safetensors")
    )
    return run
