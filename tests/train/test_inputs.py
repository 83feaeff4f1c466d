"""Bad and unusual input: clear named errors up front, per-image failures counted, shards."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oiforge.errors import InvalidInputError, MalformedFileError
from oiforge.progress import Notice
from oiforge.train import build_config, run_training, train
from oiforge.train.dataset import Sample, open_dataset, source_of, split_off

from .synthetic import make_dataset


def _cfg(ds: Path, out: Path, **kw: object) -> object:
    options: dict[str, object] = {"image_size": 32, "epochs": 2, "workers": 0, **kw}
    return build_config(dataset=str(ds), out=str(out), **options)


def test_missing_and_empty_datasets(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a directory"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(InvalidInputError, match="no train/ folder"):
        open_dataset(tmp_path)
    (tmp_path / "train").mkdir()
    with pytest.raises(InvalidInputError, match=r"no training images|0 class"):
        open_dataset(tmp_path)


def test_single_class_is_refused(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", classes=1, per_class={"train": 3}, with_classes_json=False)
    with pytest.raises(InvalidInputError, match="1 class"):
        open_dataset(ds)


def test_a_class_folder_without_images_is_named(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", classes=2, per_class={"train": 3}, with_classes_json=False)
    (ds / "train" / "zebra").mkdir()
    (ds / "train" / "zebra" / "notes.txt").write_text("no images here")
    with pytest.raises(InvalidInputError, match="zebra"):
        open_dataset(ds)


def test_a_broken_classes_json_is_a_malformed_file(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", classes=2, per_class={"train": 3})
    (ds / "classes.json").write_text(json.dumps([{"index": 5, "name": "x"}]))
    with pytest.raises(MalformedFileError, match=r"classes\.json"):
        open_dataset(ds)


def test_val_is_carved_from_train_when_missing(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", classes=2, per_class={"train": 10})
    index = open_dataset(ds, val_fraction=0.2, seed=1)
    assert len(index.splits["val"]) == 4 and len(index.splits["train"]) == 16
    train_keys = {s.key for s in index.splits["train"]}
    assert not train_keys & {s.key for s in index.splits["val"]}
    again = open_dataset(ds, val_fraction=0.2, seed=1)
    assert [s.key for s in again.splits["val"]] == [s.key for s in index.splits["val"]]


@pytest.fixture()
def corrupt_dataset(tmp_path: Path, tiny_dataset: Path) -> Path:
    ds = tmp_path / "ds"
    shutil.copytree(tiny_dataset, ds)
    first = sorted((ds / "train" / "class0").glob("*.jpg"))
    first[0].write_bytes(first[0].read_bytes()[:200])  # truncated JPEG
    first[1].write_bytes(b"this is not an image at all")
    (ds / "val" / "class1" / "empty.jpg").write_bytes(b"")
    return ds


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["probe", "scratch"])
def test_corrupt_images_are_skipped_counted_and_reported(
    corrupt_dataset: Path, tmp_path: Path, mode: str
) -> None:
    events = list(run_training(_cfg(corrupt_dataset, tmp_path / "r", mode=mode)))
    notices = " | ".join(e.text for e in events if isinstance(e, Notice))
    assert "2 training images could not be decoded" in notices or "2 train images" in notices
    assert (tmp_path / "r" / "best.safetensors").is_file()


@pytest.mark.slow
def test_nan_loss_stops_with_a_message(tiny_dataset: Path, tmp_path: Path) -> None:
    from oiforge.errors import StageError

    config = _cfg(tiny_dataset, tmp_path / "r", mode="scratch", lr=1e12, weight_decay=1.0, epochs=4)
    with pytest.raises(StageError, match="lower --lr"):
        train(config)


def _write_shards(src: Path, dst: Path) -> None:
    """Folders -> WebDataset shards: <split>/shard-000.tar with .jpg/.cls/.json members."""
    classes = json.loads((src / "classes.json").read_text())
    by_folder = {c["folder"]: c for c in classes}
    (dst).mkdir(parents=True)
    shutil.copy(src / "classes.json", dst / "classes.json")
    for split in ("train", "val", "test"):
        with tarfile.open(dst / f"{split}-000000.tar", "w") as tar:
            for path in sorted((src / split).rglob("*.jpg")):
                cls = by_folder[path.parent.name]
                meta = json.dumps({"class_name": cls["name"]}).encode()
                for ext, data in (("jpg", path.read_bytes()), ("cls", str(cls["index"]).encode()),
                                  ("json", meta)):  # fmt: skip
                    info = tarfile.TarInfo(f"{path.stem}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


@pytest.mark.slow
def test_webdataset_shards_train_like_folders(tiny_dataset: Path, tmp_path: Path) -> None:
    _write_shards(tiny_dataset, tmp_path / "shards")
    index = open_dataset(tmp_path / "shards")
    assert index.kind == "webdataset"
    assert [len(index.splits[s]) for s in ("train", "val", "test")] == [48, 18, 18]
    assert [c.name for c in index.classes] == ["Class0", "Class1", "Class2"]
    summary = train(_cfg(tmp_path / "shards", tmp_path / "r", mode="scratch"))
    assert summary["epochs_run"] == 2


def test_carved_val_keeps_crops_of_one_photo_together(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", classes=2, per_class={"train": 6})
    for jpg in sorted((ds / "train").rglob("*.jpg")):
        for box in (1, 2):
            shutil.copy(jpg, jpg.with_name(f"{jpg.stem}_{box}.jpg"))
    index = open_dataset(ds, val_fraction=0.3, seed=0)

    def sources(split: str) -> set[str]:
        return {Path(s.key).stem.split("_")[0] for s in index.splits[split]}

    assert not sources("train") & sources("val")
    assert len(index.splits["val"]) % 3 == 0


@settings(max_examples=50, deadline=None)
@given(
    sources=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3)), min_size=2, max_size=30),
    fraction=st.floats(0.05, 0.8),
    seed=st.integers(0, 1000),
)
def test_split_off_is_a_seeded_partition_by_source(
    sources: list[tuple[int, int]], fraction: float, seed: int
) -> None:
    samples = [
        Sample(f"/x/{i}.jpg", label, f"train/c{label}/{i:016x}_{box}.jpg")
        for i, (label, boxes) in enumerate(sources)
        for box in range(boxes)
    ]
    keep, held = split_off(samples, fraction, seed)
    assert sorted(s.key for s in keep + held) == sorted(s.key for s in samples)
    assert not {source_of(s) for s in keep} & {source_of(s) for s in held}
    assert (keep, held) == split_off(samples, fraction, seed)
    for label in {s.label for s in samples}:
        n_sources = len({source_of(s) for s in samples if s.label == label})
        if n_sources >= 2:
            assert any(s.label == label for s in held) and any(s.label == label for s in keep)
