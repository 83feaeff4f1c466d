"""Real clients load what the build writes: torchvision, HF datasets, webdataset, Parquet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from oiforge.build.synthetic import SyntheticSet

ALL = ("folders", "webdataset", "parquet")


@pytest.fixture()
def built(synth: SyntheticSet, build: Any) -> Path:
    return build(synth, formats=ALL, size=64, shard_size=10).out


@pytest.mark.slow
def test_torchvision_imagefolder_matches_classes_json(built: Path) -> None:
    from torchvision.datasets import ImageFolder

    classes = json.loads((built / "classes.json").read_text())
    ds = ImageFolder(str(built / "train"))
    assert ds.classes == [c["folder"] for c in classes]
    assert ds.class_to_idx == {c["folder"]: c["index"] for c in classes}
    image, label = ds[0]
    assert max(image.size) == 64 and label == 0


@pytest.mark.slow
def test_hf_imagefolder_loads_offline(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    manifest = pq.read_table(built / "manifest.parquet").to_pylist()
    ds = datasets.load_dataset("imagefolder", data_dir=str(built), cache_dir=str(tmp_path / "c"))
    assert set(ds) == {"train", "validation", "test"}
    train = [r for r in manifest if r["split"] == "train"]
    assert ds["train"].num_rows == len(train)
    assert ds["train"].features["label"].names == sorted({r["class_folder"] for r in train})
    pds = datasets.load_dataset(
        "parquet",
        data_files={"train": str(built / "parquet/train.parquet")},
        cache_dir=str(tmp_path / "p"),
    )
    assert pds["train"][0]["image"].size[0] <= 64
    folders = [c["folder"] for c in json.loads((built / "classes.json").read_text())]
    assert pds["train"].features["label"].names == folders


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_webdataset_reads_every_sample(built: Path) -> None:
    import gc

    import webdataset as wds

    manifest = pq.read_table(built / "manifest.parquet").to_pylist()
    shards = sorted(str(p) for p in (built / "wds").glob("*.tar"))
    seen = {}
    for sample in wds.WebDataset(shards, shardshuffle=False).decode("pil"):
        seen[sample["__key__"]] = (
            int(sample["cls"]),
            sample["json"]["image_id"],
            sample["jpg"].size,
        )
    gc.collect()  # webdataset leaves its last shard to the collector: close it here
    assert len(seen) == len(manifest)
    for row in manifest:
        cls, image_id, size = seen[row["key"]]
        assert (cls, image_id, size) == (
            row["class_index"],
            row["image_id"],
            (row["width"], row["height"]),
        )


def test_parquet_export_has_bytes_and_labels(built: Path) -> None:
    manifest = {r["key"]: r for r in pq.read_table(built / "manifest.parquet").to_pylist()}
    rows = [
        r
        for f in sorted((built / "parquet").glob("*.parquet"))
        for r in pq.read_table(f).to_pylist()
    ]
    assert {r["key"] for r in rows} == set(manifest)
    import hashlib

    for r in rows:
        assert hashlib.sha256(r["image"]["bytes"]).hexdigest() == manifest[r["key"]]["sha256"]
        assert r["label"] == manifest[r["key"]]["class_index"]
