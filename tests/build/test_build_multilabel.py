"""``build --task multilabel`` and "X vs not X" over the mirror sample's planted multi-label
block (sample.json ``multilabel``): the manifest's label lists, Parquet read by Hugging Face
``datasets`` as ``Sequence(ClassLabel)``, WebDataset JSON, the card, and the named errors."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.builds import select_from_mirror
from typer.testing import CliRunner

from oiforge.build import BuildInputs, build_dataset, verify_dataset
from oiforge.cli import app
from oiforge.contracts import read_classes, read_manifest
from oiforge.errors import SpecError
from oiforge.spec import BuildSpec, SelectSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def multi(
    mirror: Any, sample_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """A multilabel dataset (Parquet + WebDataset) of the six planted food classes."""
    facts = json.loads((sample_root / "sample.json").read_text())["multilabel"]
    tmp = tmp_path_factory.mktemp("multi")
    mids = tuple(c["mid"] for c in facts["classes"])
    spec = SelectSpec(classes=mids, multi_label="multi", min_confidence=0.5)
    selection, store = select_from_mirror(mirror, sample_root, tmp, spec)
    build = BuildSpec(task="multilabel", formats=("parquet", "webdataset"), size=64)
    result = build_dataset(BuildInputs(selection, store, tmp / "ds", build, workers=1))
    return result.out, facts


def test_the_manifest_lists_each_photos_verified_labels(multi: tuple[Path, Any]) -> None:
    out, facts = multi
    want = facts["plain"]["images"]
    rows = read_manifest(out).to_pylist()
    order = read_classes(out).classes  # type: ignore[union-attr]
    assert rows and len({r["image_id"] for r in rows}) == len(rows)  # one sample a photo
    for r in rows:
        planted = want[r["image_id"]]
        for kind in ("labels", "negatives", "machine"):  # in class index order
            assert sorted(r[kind]) == sorted(planted[kind])
            assert r[kind] == [c.mid for c in order if c.mid in r[kind]]
        assert r["title"] is not None and r["license"]  # attribution travels
    assert sum(len(r["labels"]) >= 3 for r in rows) > 3
    classes = read_classes(out)
    assert classes is not None and classes.task == "multilabel"
    assert classes.details["negatives_source"] == "verified"
    assert classes.details["min_confidence"] == 0.5
    assert verify_dataset(out).ok


def test_hugging_face_datasets_reads_sequences_of_class_labels(multi: tuple[Path, Any]) -> None:
    datasets = pytest.importorskip("datasets")
    out, _ = multi
    classes = read_classes(out)
    assert classes is not None
    files = {s: str(out / "parquet" / f"{s}.parquet") for s in ("train", "val", "test")}
    ds = datasets.load_dataset("parquet", data_files=files, cache_dir=str(out.parent / "hf"))
    feature = ds["train"].features["labels"]
    assert isinstance(feature.feature, datasets.ClassLabel)
    assert feature.feature.names == [c.folder for c in classes.classes]
    by_key = {r["key"]: r for r in read_manifest(out).to_pylist()}
    first = ds["train"][0]
    mids = [classes.classes[i].mid for i in first["labels"]]
    assert mids == by_key[first["key"]]["labels"]
    assert first["image"].size == (64, 64) or max(first["image"].size) == 64


def test_webdataset_json_carries_both_lists(multi: tuple[Path, Any]) -> None:
    out, _ = multi
    by_key = {r["key"]: r for r in read_manifest(out).to_pylist()}
    shard = sorted((out / "wds").glob("train-*.tar"))[0]
    with tarfile.open(shard) as tar:
        names = tar.getnames()
        assert not [n for n in names if n.endswith(".cls")]  # no one class a sample
        doc = json.load(tar.extractfile(next(n for n in names if n.endswith(".json"))))  # type: ignore[arg-type]
    assert doc["labels_mids"] == by_key[doc["key"]]["labels"]
    assert doc["negatives_mids"] == by_key[doc["key"]]["negatives"]
    assert len(doc["labels"]) == len(doc["labels_names"])


def test_the_card_states_the_task_counts_and_negatives(multi: tuple[Path, Any]) -> None:
    out, facts = multi
    card = (out / "DATASET.md").read_text()
    assert "Task: **multilabel**" in card
    assert "Confidence 0" in card and "machine labels count as unknown" in card
    manifest = read_manifest(out).to_pylist()
    mid = facts["classes"][0]["mid"]
    pos = sum(mid in r["labels"] for r in manifest if r["split"] == "train")
    neg = sum(mid in r["negatives"] for r in manifest if r["split"] == "train")
    train = sum(r["split"] == "train" for r in manifest)
    assert f"{pos} / {neg} / {train - pos - neg}" in card


def test_the_built_dataset_trains_evaluates_and_predicts(
    multi: tuple[Path, Any], tmp_path: Path
) -> None:
    """select -> build --task multilabel -> train -> evaluate -> export -> predict, through the
    CLI: the task travels from the dataset to the model's labels.json and its predictions."""
    out, _ = multi
    run = tmp_path / "run"
    cli = CliRunner()
    small = ["--image-size", "64", "--workers", "0", "--batch-size", "16"]
    res = cli.invoke(app, ["train", str(out), "--out", str(run), "--mode", "probe", *small])
    assert res.exit_code == 0, res.output
    labels = json.loads((run / "labels.json").read_text())
    assert labels["task"] == "multilabel"
    assert len(labels["thresholds"]) == len(read_classes(out).classes)  # type: ignore[union-attr]
    res = cli.invoke(app, ["evaluate", str(run), "--workers", "0"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "multilabel" and 0.0 <= metrics["map"] <= 1.0
    assert (run / "predictions.csv").is_file()
    res = cli.invoke(app, ["export", str(run)])
    assert res.exit_code == 0, res.output
    photo = next((out / "wds").glob("test-*.tar"))
    with tarfile.open(photo) as tar:
        name = next(n for n in tar.getnames() if n.endswith((".jpg", ".jpeg", ".png")))
        (tmp_path / "p.jpg").write_bytes(tar.extractfile(name).read())  # type: ignore[union-attr]
    res = cli.invoke(app, ["predict", str(run / "model.onnx"), str(tmp_path / "p.jpg"), "--json"])
    assert res.exit_code == 0, res.output
    assert "labels" in res.output and "Traceback" not in res.output


def test_folders_with_multilabel_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use parquet or webdataset"):
        BuildSpec(task="multilabel", formats=("folders",))
    res = CliRunner().invoke(
        app, ["build", "--task", "multilabel", "-f", "folders", "--out", str(tmp_path / "d")]
    )
    assert res.exit_code != 0 and "use parquet or webdataset" in res.output
    assert "Traceback" not in res.output
    assert BuildSpec.model_validate({"task": "multilabel"}).formats == ("parquet", "webdataset")
    assert issubclass(SpecError, Exception)


def test_a_resplit_keeps_every_photo_in_one_split(
    mirror: Any, sample_root: Path, tmp_path: Path
) -> None:
    facts = json.loads((sample_root / "sample.json").read_text())["multilabel"]
    mids = tuple(c["mid"] for c in facts["classes"])
    spec = SelectSpec(classes=mids, multi_label="multi", expand_up=True)
    selection, store = select_from_mirror(mirror, sample_root, tmp_path, spec)
    build = BuildSpec(task="multilabel", split=(0.6, 0.2, 0.2), size=48)
    out = build_dataset(BuildInputs(selection, store, tmp_path / "ds", build, workers=1)).out
    rows = read_manifest(out).to_pylist()
    assert len({r["image_id"] for r in rows}) == len(rows)
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    want = facts["expand_up"]["images"]
    assert all(sorted(want[r["image_id"]]["labels"]) == sorted(r["labels"]) for r in rows)
    excluded = json.dumps(read_classes(out).details)  # type: ignore[union-attr]
    assert '"expand_up": true' in excluded


def test_oiforge_run_honours_build_task(
    mirror: Any, sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    import oiforge

    monkeypatch.setenv("OIFORGE_MIRROR", mirror.url)
    monkeypatch.chdir(tmp_path)
    facts = json.loads((sample_root / "sample.json").read_text())["multilabel"]
    spec = {"name": "foods", "select": {"classes": [c["name"] for c in facts["classes"]],
            "multi_label": "multi", "splits": ["validation", "test"]},
            "build": {"task": "multilabel", "size": 48}}  # fmt: skip
    (tmp_path / "foods.yaml").write_text(yaml.safe_dump(spec))
    oiforge.run("foods.yaml", until="build")
    out = tmp_path / "foods" / "dataset"
    classes = read_classes(out)
    assert classes is not None and classes.task == "multilabel"
    assert (out / "parquet").is_dir() and not (out / "val").exists()
    assert "negatives" in read_manifest(out).column_names
