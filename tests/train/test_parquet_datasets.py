"""Datasets built with ``--format parquet`` only: training and evaluation read the images
from the Parquet bytes and see what they would see in the same dataset built as folders
(single-label) or shards (multi-label); a broken Parquet file is a named error."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.helpers.builds import select_from_mirror
from typer.testing import CliRunner

from oiforge.build import BuildInputs, build_dataset
from oiforge.build.synthetic import make_synthetic
from oiforge.cli import app
from oiforge.errors import MalformedFileError
from oiforge.present.facts import DatasetFacts, photo_bytes, read_dataset
from oiforge.spec import BuildSpec, SelectSpec
from oiforge.train.dataset import DatasetIndex, open_dataset, source_of

runner = CliRunner()
ENV = {"COLUMNS": "120", "TERM": "dumb"}
TRAIN = ["--mode", "scratch", "--epochs", "1", "--image-size", "32", "--workers", "0"]


def _build(selection: Path, store: Path, out: Path, **spec: Any) -> Path:
    return build_dataset(BuildInputs(selection, store, out, BuildSpec(**spec), workers=1)).out


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One small box-mode selection built twice: as class folders, and as Parquet only."""
    tmp = tmp_path_factory.mktemp("twins")
    s = make_synthetic(tmp / "synth", 24, boxes_per_image=2)
    folders = _build(s.selection, s.store, tmp / "folders", formats=("folders",), size=48)
    parquet = _build(s.selection, s.store, tmp / "parquet", formats=("parquet",), size=48)
    return folders, parquet


def _samples(index: DatasetIndex) -> dict[str, list[tuple[str, Any, str]]]:
    return {
        split: [(s.key, s.target, hashlib.sha256(s.read_bytes()).hexdigest()) for s in samples]
        for split, samples in index.splits.items()
    }


def test_a_parquet_dataset_indexes_like_its_folders(
    twins: tuple[Path, Path], tmp_path: Path
) -> None:
    folders, parquet = twins
    assert not (parquet / "train").exists() and (parquet / "parquet" / "train.parquet").is_file()
    a, b = open_dataset(folders), open_dataset(parquet)
    assert (a.kind, b.kind) == ("folders", "parquet")
    assert a.classes == b.classes and a.task == b.task == "singlelabel"
    assert set(a.splits) == {"train", "val", "test"} and all(a.splits.values())
    assert _samples(a) == _samples(b)  # keys, labels, order and bytes
    unnamed = shutil.copytree(parquet, tmp_path / "unnamed")
    (unnamed / "classes.json").unlink()  # the class names in the Parquet schema stand in
    c = open_dataset(unnamed)
    assert [x.folder for x in c.classes] == [x.folder for x in b.classes]
    assert _samples(c) == _samples(b)
    facts = read_dataset(parquet)  # what `oiforge present` shows and its learning curve reads
    assert isinstance(facts, DatasetFacts) and facts.samples
    for row in facts.samples:
        twin = folders / row.split / row.class_folder / f"{row.key}.jpg"
        assert photo_bytes(facts, row) == twin.read_bytes()
    both = shutil.copytree(folders, tmp_path / "both")
    shutil.copytree(parquet / "parquet", both / "parquet")
    assert open_dataset(both).kind == "folders"  # class folders win over Parquet files


def _train_and_evaluate(dataset: Path, run: Path, *evaluate: str) -> dict[str, Any]:
    result = runner.invoke(app, ["train", str(dataset), "--out", str(run), *TRAIN], env=ENV)
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["evaluate", str(run), *evaluate], env=ENV)
    assert result.exit_code == 0, result.output
    return dict(json.loads((run / "metrics.json").read_text()))


def _predictions(run: Path) -> list[dict[str, str]]:
    with (run / "predictions.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_train_and_evaluate_on_parquet_match_folders(
    twins: tuple[Path, Path], tmp_path: Path
) -> None:
    folders, parquet = twins
    want = _train_and_evaluate(folders, tmp_path / "a", "--workers", "0")
    got = _train_and_evaluate(parquet, tmp_path / "b", "--workers", "1")  # a reader process
    assert got["split"] == "test" and got["accuracy"] == want["accuracy"]
    assert _predictions(tmp_path / "b") == _predictions(tmp_path / "a")
    report = (tmp_path / "b" / "report.html").read_text()
    assert "CC BY" in report  # the gallery found each photo's attribution


def _rewrite(path: Path, change: Any) -> None:
    table = pq.read_table(path)
    pq.write_table(change(table), path)


def test_a_broken_parquet_file_is_a_named_error(twins: tuple[Path, Path], tmp_path: Path) -> None:
    _, parquet = twins
    truncated = shutil.copytree(parquet, tmp_path / "truncated")
    file = truncated / "parquet" / "train.parquet"
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    args = ["train", str(truncated), "--out", str(tmp_path / "r"), *TRAIN]
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 1, result.output
    assert "malformed file" in result.output and "train.parquet" in result.output
    assert "Traceback" not in result.output
    bare = shutil.copytree(parquet, tmp_path / "bare")
    _rewrite(bare / "parquet" / "val.parquet", lambda t: t.drop_columns(["image"]))
    with pytest.raises(MalformedFileError, match=r"val\.parquet.*no `image` column"):
        open_dataset(bare)


@pytest.mark.slow
def test_a_corrupt_image_row_is_skipped_and_counted(
    twins: tuple[Path, Path], tmp_path: Path
) -> None:
    _, parquet = twins
    broken = shutil.copytree(parquet, tmp_path / "broken")
    first = open_dataset(broken).splits["train"][0]

    def garble(table: pa.Table) -> pa.Table:
        images = table.column("image").to_pylist()
        images[first.row]["bytes"] = b"\xff\xd8 not a jpeg"
        column = pa.array(images, type=table.schema.field("image").type)
        return table.set_column(table.schema.get_field_index("image"), "image", column)

    _rewrite(broken / "parquet" / "train.parquet", garble)
    args = ["train", str(broken), "--out", str(tmp_path / "r"), *TRAIN]
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    assert "1 training images could not be decoded" in result.output


@pytest.mark.slow
def test_a_multilabel_parquet_dataset_reads_like_its_shards(
    mirror: Any, sample_root: Path, tmp_path: Path
) -> None:
    facts = json.loads((sample_root / "sample.json").read_text())["multilabel"]
    spec = SelectSpec(classes=tuple(c["mid"] for c in facts["classes"]), multi_label="multi")
    selection, store = select_from_mirror(mirror, sample_root, tmp_path, spec)
    shards = _build(selection, store, tmp_path / "ds", task="multilabel", size=48)
    parquet = shutil.copytree(shards, tmp_path / "pq", ignore=shutil.ignore_patterns("wds"))
    a, b = open_dataset(shards), open_dataset(parquet)
    assert (a.kind, b.kind) == ("webdataset", "parquet") and b.multilabel
    assert a.classes == b.classes
    for split, samples in a.splits.items():
        mine = [(source_of(s), s.target, s.read_bytes()) for s in b.splits[split]]
        assert mine == [(source_of(s), s.target, s.read_bytes()) for s in samples]
    targets = [t for s in b.splits["train"] for t in s.target]  # type: ignore[union-attr]
    assert {1.0, 0.0, -1.0} <= set(targets)  # positives, verified negatives, unknowns
    metrics = _train_and_evaluate(parquet, tmp_path / "run", "--workers", "0")
    assert metrics["task"] == "multilabel" and "map" in metrics
