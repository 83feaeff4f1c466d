"""Lock, byte-identical rebuilds, verify, resume, exclude list, and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from oiforge.build import BuildInputs, ExcludeList, build_dataset, read_lock, verify_dataset
from oiforge.build.synthetic import SyntheticSet
from oiforge.cli import app
from oiforge.errors import ChecksumError

RUNNER = CliRunner()


@pytest.mark.slow
def test_two_builds_are_byte_identical_and_verify(synth: SyntheticSet, build: Any) -> None:
    a = build(synth, out="a", formats=("folders", "webdataset"), size=48)
    b = build(synth, out="b", workers=2, formats=("folders", "webdataset"), size=48)
    assert a.top_hash == b.top_hash
    assert (a.out / "oiforge.lock").read_bytes() == (b.out / "oiforge.lock").read_bytes()
    lock = read_lock(a.out)
    manifest = pq.read_table(a.out / "manifest.parquet").to_pylist()
    assert lock["samples"] == {r["key"]: r["sha256"] for r in manifest}
    assert verify_dataset(a.out).ok


def test_verify_reports_changed_missing_and_extra(synth: SyntheticSet, build: Any) -> None:
    out = build(synth, size=48).out
    first = sorted((out / "train").rglob("*.jpg"))
    first[0].write_bytes(b"tampered")
    first[1].unlink()
    (out / "train" / "stray.txt").write_text("x")
    report = verify_dataset(out)
    assert report.changed == [first[0].relative_to(out).as_posix()]
    assert report.missing == [first[1].relative_to(out).as_posix()]
    assert report.extra == ["train/stray.txt"]
    res = RUNNER.invoke(app, ["verify", str(out)], terminal_width=120)
    assert res.exit_code == 1


def test_verify_reports_hidden_files_that_loaders_read(synth: SyntheticSet, build: Any) -> None:
    """ImageFolder loads ``.x.jpg`` files and makes a class of a hidden folder: they are
    extra like any file the lock does not list (OS junk such as ``.DS_Store`` too)."""
    from torchvision.datasets import ImageFolder

    out = build(synth, size=48).out
    before = len(ImageFolder(str(out / "train")))
    a, b = sorted(p for p in (out / "train").iterdir() if p.is_dir())[:2]
    copy = b / ".0000000000000000_0.jpg"
    copy.write_bytes(next(a.glob("*.jpg")).read_bytes())
    assert len(ImageFolder(str(out / "train"))) == before + 1
    (out / ".DS_Store").write_bytes(b"junk")
    (out / "train" / ".ipynb_checkpoints").mkdir()
    (out / "train" / ".ipynb_checkpoints" / "x.jpg").write_bytes(b"junk")
    report = verify_dataset(out)
    extra = [".DS_Store", copy.relative_to(out).as_posix(), "train/.ipynb_checkpoints/x.jpg"]
    assert report.extra == sorted(extra) == report.hidden_extra
    res = RUNNER.invoke(app, ["verify", str(out)], terminal_width=200)
    assert res.exit_code == 1 and ".0000000000000000_0.jpg" in res.output
    assert "hidden" in res.output


def test_interrupted_build_resumes_from_the_cache(synth: SyntheticSet, build: Any) -> None:
    with pytest.raises(ChecksumError, match="rebuild differs"):
        build(synth, size=48, expected_files={"nothing": "0"})
    result = build(synth, size=48)
    assert result.reused_images == len(synth.image_ids)
    assert verify_dataset(result.out).ok


def test_exclude_list_is_honoured_and_locked(synth: SyntheticSet, build: Any) -> None:
    gone = synth.image_ids[0]
    ex = ExcludeList(images={gone: "blurry"}, boxes={(synth.image_ids[1], 0): "wrong box"})
    result = build(synth, size=48, exclude=ex)
    manifest = pq.read_table(result.out / "manifest.parquet").to_pylist()
    keys = {r["key"] for r in manifest}
    assert not any(k.startswith(gone) for k in keys)
    assert f"{synth.image_ids[1]}_0" not in keys and f"{synth.image_ids[1]}_1" in keys
    excluded = pq.read_table(result.out / "excluded.parquet").to_pylist()
    assert {"exclude_list: blurry", "exclude_list: wrong box"} <= {e["reason"] for e in excluded}
    assert read_lock(result.out)["exclude_list"] == ex.entries()


@pytest.mark.slow
def test_cli_build_then_rebuild_from_lock(synth: SyntheticSet, tmp_path: Path) -> None:
    common = ["--selection", str(synth.selection), "--store", str(synth.store), "--workers", "1"]
    opts = ["--size", "48", "--split", "0.6,0.2,0.2", "--seed", "3", "--aspect", "square-pad"]
    formats = ["-f", "folders", "-f", "parquet"]
    res = RUNNER.invoke(
        app, ["build", *common, "--out", str(tmp_path / "a"), *opts, *formats], terminal_width=120
    )
    assert res.exit_code == 0, res.output
    assert "built" in res.output
    lock = tmp_path / "a" / "oiforge.lock"
    res = RUNNER.invoke(
        app,
        ["build", *common, "--out", str(tmp_path / "b"), "--lock", str(lock)],
        terminal_width=120,
    )
    assert res.exit_code == 0, res.output
    assert read_lock(tmp_path / "b")["top_hash"] == read_lock(lock)["top_hash"]
    res = RUNNER.invoke(app, ["verify", str(tmp_path / "b")], terminal_width=120)
    assert res.exit_code == 0 and "ok" in res.output
    res = RUNNER.invoke(app, ["build", *common, "--split", "0.5,0.5"], terminal_width=120)
    assert res.exit_code == 2 and "three fractions" in res.output


def test_rebuild_from_lock_with_a_changed_store_fails_loudly(
    synth: SyntheticSet, build: Any, tmp_path: Path
) -> None:
    a = build(synth, size=48)
    lock = read_lock(a.out)
    inputs = BuildInputs(
        synth.selection,
        synth.store,
        tmp_path / "c",
        build_spec(lock),
        workers=1,
        expected_files={**lock["files"], "train/extra.jpg": "0" * 64},
    )
    with pytest.raises(ChecksumError):
        build_dataset(inputs)
    assert not (tmp_path / "c").exists()


def test_lock_records_codec_versions_and_a_differing_rebuild_names_them(
    synth: SyntheticSet, build: Any, tmp_path: Path
) -> None:
    from PIL import features

    a = build(synth, size=48)
    lock = read_lock(a.out)
    env = lock["environment"]
    assert env["pillow-libjpeg"] == features.version("jpg")
    assert {"numpy", "pillow", "pyarrow", "simplejpeg", "opencv-python-headless"} <= set(env)
    older = {**env, "simplejpeg": "0.0.1"}  # as if the lock came from another machine
    inputs = BuildInputs(
        synth.selection,
        synth.store,
        tmp_path / "d",
        build_spec(lock),
        workers=1,
        expected_files={**lock["files"], "train/extra.jpg": "0" * 64},
        expected_environment=older,
    )
    with pytest.raises(ChecksumError, match=r"simplejpeg 0\.0\.1 -> "):
        build_dataset(inputs)


def test_lock_takes_the_open_images_version_from_the_selection(
    synth: SyntheticSet, tmp_path: Path
) -> None:
    from oiforge.contracts import SELECTION_VERSION_KEY

    stamped = tmp_path / "selection.parquet"
    table = pq.read_table(synth.selection)
    pq.write_table(table.replace_schema_metadata({SELECTION_VERSION_KEY: b"v6"}), stamped)
    res = build_dataset(BuildInputs(stamped, synth.store, tmp_path / "ds", workers=1))
    assert read_lock(res.out)["open_images_version"] == "v6"
    res = build_dataset(BuildInputs(synth.selection, synth.store, tmp_path / "plain", workers=1))
    assert read_lock(res.out)["open_images_version"] == "unknown"  # a hand-made selection


def build_spec(lock: dict[str, Any]) -> Any:
    from oiforge.spec import BuildSpec

    return BuildSpec.model_validate(lock["build"])
