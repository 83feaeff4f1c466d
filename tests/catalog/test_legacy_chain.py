"""A user who pinned an old release: catalog fetch -> classes -> select -> download, on the
mirror sample's v1-v3 tarballs, through the real CLI (the same commands as for v4+)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from oiforge.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()
PERSON = "/m/01g317"
#: the sample split an image is in -> its split in each old release (v1 had no test split).
SPLIT_OF = {"v1": {"test": "validation"}, "v2": {}, "v3": {}}


def _run(mirror_url: str, *args: str) -> str:
    env = {"OIFORGE_MIRROR": mirror_url, "COLUMNS": "200"}
    res = runner.invoke(app, list(args), env=env, terminal_width=200)
    assert res.exit_code == 0, f"{args}: {res.output}"
    return res.output


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_old_release_select_and_download(
    mirror: object, sample_root: Path, tmp_path: Path, version: str
) -> None:
    url: str = mirror.url  # type: ignore[attr-defined]
    fetched = _run(url, "catalog", "fetch", "--version", version)
    assert "fetched" in fetched and "failed" not in fetched
    home = Path(os.environ["OIFORGE_HOME"]) / "metadata"
    assert not list(home.rglob("*.tar.gz")), "tarballs are dropped once extracted"
    listed = _run(url, "classes", "person", "--version", version, "--limit", "3")
    assert PERSON in listed
    sel = tmp_path / "selection.parquet"
    _run(url, "select", "Person", "--version", version, "--out", str(sel))

    facts = json.loads((sample_root / "sample.json").read_text("utf-8"))
    moved = SPLIT_OF[version]
    expected = {
        (im["image_id"], moved.get(im["split"], im["split"]))
        for im in facts["images"]
        if PERSON in im["classes"] and not (version == "v1" and im["split"] == "train")
    }  # v1 train has machine labels only: select needs --min-confidence for those
    table = pq.read_table(sel)
    got = zip(table["image_id"].to_pylist(), table["split"].to_pylist(), strict=True)
    assert set(got) == expected
    assert set(table["label_mid"].to_pylist()) == {PERSON}
    assert table["rotation"].null_count == table.num_rows  # no Rotation before 2018_04
    assert all(table["original_md5"].to_pylist()) and all(table["thumbnail_url"].to_pylist())

    store = tmp_path / "store"
    _run(url, "download", str(sel), "--out", str(store), "--limit", "4", "--mirror", url)
    stored = list(store.rglob("*.jpg"))
    assert 1 <= len(stored) <= 4
    assert {p.stem for p in stored} <= {i for i, _ in expected}
    if version == "v1":  # and on to a dataset, from the release that differs most
        dataset = tmp_path / "dataset"
        built = _run(url, "build", "--selection", str(sel), "--store", str(store), "--out",
                     str(dataset), "--format", "folders", "--size", "32")  # fmt: skip
        assert f"{len(stored)} samples" in built
        assert len(list((dataset / "val").rglob("*.jpg"))) == len(stored)


def test_old_release_with_machine_labels(mirror: object, tmp_path: Path) -> None:
    url: str = mirror.url  # type: ignore[attr-defined]
    _run(url, "catalog", "fetch", "--version", "v1")
    sel = tmp_path / "selection.parquet"
    args = ["select", "person", "--version", "v1", "--splits", "train", "--out", str(sel)]
    _run(url, *args, "--min-confidence", "0.5")
    table = pq.read_table(sel)
    assert table.num_rows > 0 and set(table["split"].to_pylist()) == {"train"}
    assert min(table["confidence"].to_pylist()) >= 0.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label-mode", "box"], "no bounding boxes"),
        (["--splits", "train"], "only machine-generated labels for train"),
    ],
)
def test_old_release_unanswerable_spec_is_a_named_error(
    mirror: object, tmp_path: Path, args: list[str], message: str
) -> None:
    url: str = mirror.url  # type: ignore[attr-defined]
    _run(url, "catalog", "fetch", "--version", "v1")
    sel = tmp_path / "selection.parquet"
    res = runner.invoke(app, ["select", "Person", "--version", "v1", "--out", str(sel), *args],
                        env={"OIFORGE_MIRROR": url}, terminal_width=200)  # fmt: skip
    assert res.exit_code == 2, res.output
    assert message in res.output and not sel.exists()
