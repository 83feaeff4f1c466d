"""The sharded build: byte-identical dataset (same lock top hash) to the local build."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from oiforge.build import BuildInputs, build_dataset
from oiforge.distributed import ShardEvent, run_build_sharded
from oiforge.download import DownloadConfig, download
from oiforge.endpoints import Endpoints


@pytest.fixture()
def small_store(sample_selection: Path, endpoints: Endpoints, tmp_path: Path) -> tuple[Path, Path]:
    selection = tmp_path / "selection.parquet"
    pq.write_table(pq.read_table(sample_selection).slice(0, 150), selection)
    download(selection, tmp_path / "store", DownloadConfig(workers=0, backoff_s=0.05), endpoints)
    return selection, tmp_path / "store"


@pytest.mark.slow
def test_sharded_build_is_identical(small_store: tuple[Path, Path], tmp_path: Path) -> None:
    selection, store = small_store
    local = build_dataset(BuildInputs(selection, store, tmp_path / "local", workers=1))
    events: list[ShardEvent] = []
    inputs = BuildInputs(selection, store, tmp_path / "sharded", workers=1)
    sharded = run_build_sharded(inputs, num_shards=3, on_event=events.append)
    assert sharded.top_hash == local.top_hash
    assert sharded.samples == local.samples and sharded.per_split == local.per_split
    assert sharded.reused_images > 0  # the final build found the shards' renders
    assert len([e for e in events if e.kind == "started"]) == 3
    other = BuildInputs(selection, store, tmp_path / "two-shards", workers=1)
    assert run_build_sharded(other, num_shards=2).top_hash == local.top_hash


def test_out_that_is_not_a_dataset_is_refused(sample_selection: Path, tmp_path: Path) -> None:
    from oiforge.errors import InvalidInputError

    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(InvalidInputError, match="not an oiforge dataset"):
        run_build_sharded(BuildInputs(sample_selection, tmp_path, out), num_shards=2)
    assert (out / "precious.txt").read_text() == "keep me"
