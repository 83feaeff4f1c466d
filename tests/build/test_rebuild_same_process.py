"""Two builds of the same output in one process (a long-lived worker, a notebook)."""

from __future__ import annotations

import shutil
from pathlib import Path

from oiforge.build import BuildInputs, build_dataset
from oiforge.build.synthetic import make_synthetic


def test_second_build_in_the_same_process_after_the_first_was_removed(tmp_path: Path) -> None:
    made = make_synthetic(tmp_path / "src", images=6)
    store, selection = made.store, made.selection
    out = tmp_path / "ds"
    first = build_dataset(BuildInputs(selection=selection, store=store, out=out, workers=1))
    shutil.rmtree(out)
    for cache in tmp_path.glob(".*oiforge-partial"):
        shutil.rmtree(cache)
    second = build_dataset(BuildInputs(selection=selection, store=store, out=out, workers=1))
    assert second.top_hash == first.top_hash
