"""Trainable classes on the mirror sample, for a v1-v3 release and a v4+ one.

The expected counts are computed straight from the sample's v7 label CSVs with the ``csv``
module (the v1-v3 tarballs hold the same rows); the code under test reads them through
fetch, tarball extraction, ingest and DuckDB.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

import pyarrow.csv as pacsv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from oiforge.catalog import fetch, open_catalog, trainable_classes
from oiforge.catalog.files import official_files
from oiforge.cli import app
from oiforge.endpoints import Endpoints
from oiforge.errors import InvalidInputError

pytestmark = pytest.mark.slow
runner = CliRunner()


def _v7_counts(root: Path, kind: str, splits: tuple[str, ...], positive: bool) -> dict[str, int]:
    images: dict[str, set[str]] = defaultdict(set)
    for f in official_files("v7", (kind,), splits):
        text = (root / "openimages" / f.relpath).read_text("utf-8")
        for row in csv.DictReader(io.StringIO(text)):
            if not positive or float(row["Confidence"]) == 1.0:
                images[row["LabelName"]].add(row["ImageID"])
    return {mid: len(ids) for mid, ids in images.items()}


def _fetched(endpoints: Endpoints, version: str) -> None:
    results = fetch(version, ["human_labels", "machine_labels"], endpoints=endpoints)
    assert {r.status for r in results} <= {"fetched", "cached"}, results


@pytest.mark.parametrize("version", ["v3", "v7"])
def test_counts_are_human_verified_positive_images(
    sample_root: Path, endpoints: Endpoints, version: str
) -> None:
    _fetched(endpoints, version)
    train = _v7_counts(sample_root, "human_labels", ("train",), positive=True)
    val = _v7_counts(sample_root, "human_labels", ("validation",), positive=True)
    with open_catalog(version, endpoints) as cat:
        table = trainable_classes(cat, min_val=15, min_train=40, include_all=True)
        default = trainable_classes(cat, min_val=15, min_train=40)
        for done in cat.ingested.values():  # without ingest's per-class counts: DuckDB counts
            if done.counts is not None:
                done.counts.unlink()
        assert trainable_classes(cat, min_val=15, min_train=40, include_all=True) == table
    rows = {r["label_mid"]: r for r in table.to_pylist()}
    assert {m: r["train_images"] for m, r in rows.items() if r["train_images"]} == train
    assert {m: r["val_images"] for m, r in rows.items() if r["val_images"]} == val
    for r in rows.values():
        assert r["trainable"] == (r["train_images"] >= 40 and r["val_images"] >= 15)
        assert (r["train_source"], r["val_source"]) == ("human", "human")
    picked = default.to_pandas()
    assert set(picked["label_mid"]) == {m for m, r in rows.items() if r["trainable"]}
    assert 0 < len(picked) < len(rows)  # the thresholds cut somewhere inside the sample
    assert list(picked["val_images"]) == sorted(picked["val_images"], reverse=True)


def test_v1_counts_machine_labels_on_train(sample_root: Path, endpoints: Endpoints) -> None:
    """v1 has human labels on validation only; its README counted train from machine labels."""
    _fetched(endpoints, "v1")
    train = _v7_counts(sample_root, "machine_labels", ("train",), positive=False)
    # v1's validation set is the later validation + test
    val = _v7_counts(sample_root, "human_labels", ("validation", "test"), positive=True)
    with open_catalog("v1", endpoints) as cat:
        table = trainable_classes(cat, min_val=0, min_train=0, include_all=True)
        with pytest.raises(InvalidInputError):
            trainable_classes(cat, val_splits=("test",))  # v1 has no test split
    rows = table.to_pylist()
    assert {r["label_mid"]: r["train_images"] for r in rows if r["train_images"]} == train
    assert {r["label_mid"]: r["val_images"] for r in rows if r["val_images"]} == val
    assert {(r["train_source"], r["val_source"]) for r in rows} == {("machine", "human")}
    assert all(r["label_name"] == r["label_name"].lower() for r in rows)  # dict.csv names


def test_cli_trainable(endpoints: Endpoints, tmp_path: Path) -> None:
    _fetched(endpoints, "v2")
    env = {"OIFORGE_METADATA_BASE": endpoints.metadata_base}
    out = tmp_path / "trainable.csv"
    args = ["classes", "--trainable", "--version", "v2", "--min-val", "10", "--min-train", "5"]
    res = runner.invoke(app, [*args, "--out", str(out)], env=env, terminal_width=160)
    assert res.exit_code == 0, res.output
    written = pacsv.read_csv(out).to_pylist()
    assert written and "trainable labels" in res.output
    assert all(r["val_images"] >= 10 and r["train_images"] >= 5 for r in written)
    assert written[0]["label_name"] in res.output
    bad = runner.invoke(app, [*args, "--val-splits", "train"], env=env)
    assert bad.exit_code == 2
    wrong = runner.invoke(app, [*args, "--out", str(tmp_path / "x.txt")], env=env)
    assert wrong.exit_code == 2 and "csv" in wrong.output


def test_thresholds_only_filter(endpoints: Endpoints) -> None:
    """Property: any thresholds give exactly the full table's rows that meet them, in order."""
    _fetched(endpoints, "v3")
    with open_catalog("v3", endpoints) as cat:
        full = trainable_classes(cat, 0, 0, include_all=True).to_pylist()

        @settings(max_examples=20, deadline=None)
        @given(st.integers(0, 150), st.integers(0, 150))
        def check(min_val: int, min_train: int) -> None:
            got = trainable_classes(cat, min_val, min_train).to_pylist()
            keep = [
                {**r, "trainable": True}
                for r in full
                if r["val_images"] >= min_val and r["train_images"] >= min_train
            ]
            assert [r["label_mid"] for r in got] == [r["label_mid"] for r in keep]
            assert got == keep

        check()
