"""`oiforge run SPEC` against the mirror: every stage once, then only what a change reaches;
a SIGKILL mid-download and a rerun that fetches nothing twice; download.max_side honoured;
--from/--until; spec errors that name the key and the valid ones."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from tests.helpers.golden import check_text
from typer.testing import CliRunner, Result

import oiforge
from oiforge.cli import app
from oiforge.contracts import read_journal
from oiforge.mirror.faults import load_rules
from oiforge.mirror.server import MirrorServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sandwiches.yaml"
CHAIN = ["select", "download", "build", "train", "evaluate", "export"]


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), terminal_width=140)


def _state(work: Path) -> dict[str, Any]:
    stages: dict[str, Any] = json.loads((work / "oiforge-run.json").read_text())["stages"]
    return stages


def _requests_since(mirror: Any, before: dict[str, int]) -> list[str]:
    now: dict[str, int] = mirror.request_counts()
    return sorted(path for path, n in now.items() if n > before.get(path, 0))


def _edit(spec: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(spec.read_text())
    change(data)
    spec.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture()
def at_mirror(mirror: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's folder as the current one, the mirror as every remote host."""
    monkeypatch.setenv("OIFORGE_MIRROR", mirror.url)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_the_sandwiches_example_runs_then_reruns_only_what_changed(
    at_mirror: Path, mirror: Any
) -> None:
    shutil.copy(EXAMPLE, at_mirror / "sandwiches.yaml")
    work = at_mirror / "sandwiches"
    check_text("run_dry_run_fresh.txt", cli("run", "sandwiches.yaml", "--dry-run").stdout)
    first = cli("run", "sandwiches.yaml")
    assert first.exit_code == 0, first.output
    assert {s: e["status"] for s, e in _state(work).items()} == dict.fromkeys(CHAIN, "done")
    assert "artefacts" in first.stdout and "sandwiches/run/model.onnx" in first.stdout
    assert (work / "dataset" / "oiforge.lock").is_file() and (
        work / "run" / "report.html"
    ).is_file()

    before = mirror.request_counts()
    again = oiforge.run("sandwiches.yaml")  # the Python API: a typed result
    assert again.ran == [] and {s.action for s in again.stages} == {"skip", "off"}
    assert _requests_since(mirror, before) == []
    check_text("run_dry_run_nothing.txt", cli("run", "sandwiches.yaml", "--dry-run").stdout)

    _edit(at_mirror / "sandwiches.yaml", lambda d: d["build"].update(size=160))
    check_text("run_dry_run_build_size.txt", cli("run", "sandwiches.yaml", "--dry-run").stdout)
    third = oiforge.run("sandwiches.yaml")
    assert third.ran == ["build", "train", "evaluate", "export"]
    assert third.stage("build").why == "spec changed: build.size 224 -> 160"
    assert third.stage("train").why == "input changed: dataset"
    assert _requests_since(mirror, before) == []  # nothing fetched: select, download up to date
    assert _sides(next((work / "dataset" / "train").rglob("*.jpg"))) == (160, 160)

    book = {"max_photos": 4, "pick": {"A": "Apple"}, "skip": [chr(c) for c in range(66, 91)]}
    present = {"learning_curve": False, "estimate": False}
    _edit(at_mirror / "sandwiches.yaml", lambda d: d.update(book=book, present=present))
    fourth = oiforge.run("sandwiches.yaml")
    assert fourth.ran == ["book", "present"]
    assert (work / "book" / "interior.pdf").read_bytes().startswith(b"%PDF")
    assert (work / "deck" / "index.html").is_file() and (work / "deck" / "slides.md").is_file()
    assert fourth.stage("present").why and oiforge.run("sandwiches.yaml").ran == []


def _ok_paths(store: Path) -> set[str]:
    if not (store / "journal.sqlite").exists():
        return set()
    rows = read_journal(store).to_pylist()
    return {"/" + r["url"].split("/", 3)[3] for r in rows if r["status"] == "ok"}


def _oiforge(*args: str, cwd: Path, url: str) -> subprocess.Popen[bytes]:
    """The real CLI in a process of its own, its output appended to ``cwd/cli.log``."""
    env = {**os.environ, "OIFORGE_MIRROR": url, "COLUMNS": "100"}
    with (cwd / "cli.log").open("ab") as log:
        cmd = [sys.executable, "-m", "oiforge.cli", *args]
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=log)


@pytest.mark.slow
def test_a_kill_during_download_then_a_rerun_fetches_nothing_twice(
    sample_root: Path, tmp_path: Path
) -> None:
    spec = {
        "classes": ["Cat", "Dog", "Zebra", "Apple"],
        "download": {"connections": 4, "processes": 2},  # the run's own bar must not block forks
    }
    (tmp_path / "pets.yaml").write_text(yaml.safe_dump(spec))
    store = tmp_path / "pets" / "store"
    slow = [*load_rules(sample_root / "faults.yaml"), "/open-images-dataset/*=slow:100000"]
    with MirrorServer(sample_root, faults=slow) as server:
        args = ("run", "pets.yaml", "--until", "download")
        proc = _oiforge(*args, cwd=tmp_path, url=server.url)
        deadline = time.monotonic() + 120
        while len(_ok_paths(store)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the download finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _state(tmp_path / "pets")["download"]["status"] == "started"
        ok_before = _ok_paths(store)
        server.reset()
        assert _oiforge(*args, cwd=tmp_path, url=server.url).wait(timeout=240) == 0
        output = (tmp_path / "cli.log").read_text(errors="replace")
        assert "download (did not finish last time)" in output, output
        assert not ok_before & set(server.request_counts()), "an ok image was fetched again"
    assert json.loads((store / "stats.json").read_text())["processes"] == 2
    state = _state(tmp_path / "pets")
    assert state["select"]["status"] == state["download"]["status"] == "done"
    assert len(read_journal(store)) == len(set(read_journal(store).column("image_id").to_pylist()))


def _sides(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def _longest_sides(store: Path) -> set[int]:
    return {max(_sides(p)) for p in store.rglob("*.jpg")}


def test_download_max_side_in_the_spec_limits_the_stored_images(at_mirror: Path) -> None:
    spec = at_mirror / "small.yaml"
    spec.write_text(yaml.safe_dump({"classes": ["Cat", "Zebra"], "download": {"max_side": 64}}))
    result = oiforge.run(spec, until="download")
    assert result.ran == ["select", "download"]
    assert result.stage("build").why == "not asked (--until download)"
    assert max(_longest_sides(at_mirror / "small" / "store")) == 64

    _edit(spec, lambda d: d["download"].update(max_side=48))
    again = oiforge.run(spec, until="download")
    assert again.ran == ["download"] and "a fresh store" in again.stage("download").summary
    assert max(_longest_sides(at_mirror / "small" / "store")) == 48


def test_from_and_until_choose_the_stages(at_mirror: Path) -> None:
    spec = at_mirror / "cats.yaml"
    spec.write_text(yaml.safe_dump({"classes": ["Cat", "Zebra"], "per_class": 4}))
    missing = cli("run", "cats.yaml", "--from", "build")
    assert missing.exit_code == 1 and "build needs selection.parquet" in missing.output
    assert oiforge.run(spec, until="build").ran == ["select", "download", "build"]

    _edit(spec, lambda d: d.update(per_class=3))  # select is stale, but not asked
    later = oiforge.run(spec, from_stage="download", until="build")
    assert later.ran == [] and later.stage("select").why == "not asked (--from download)"
    assert oiforge.run(spec, until="select").ran == ["select"]
    assert oiforge.run(spec, until="build").ran == ["download", "build"]

    one = read_journal(at_mirror / "cats" / "store").column("image_id")[0].as_py()
    (at_mirror / "leave-out.txt").write_text(f"{one},by hand\n")
    _edit(spec, lambda d: d.update(build={"exclude_list": "leave-out.txt"}))
    assert oiforge.run(spec, until="build").ran == ["build"]
    excluded = (at_mirror / "cats" / "dataset" / "oiforge.lock").read_text()
    assert one in excluded and "by hand" in excluded
    by_hand = cli("build", "cats.yaml", "--selection", "cats/selection.parquet",
                  "--store", "cats/store", "--out", "by-hand")  # fmt: skip
    assert by_hand.exit_code == 0, by_hand.output  # `build SPEC` reads the same section
    assert "by hand" in (at_mirror / "by-hand" / "oiforge.lock").read_text()
    (at_mirror / "leave-out.txt").write_text(f"{one},by hand again\n")
    again = oiforge.run(spec, until="build")
    assert (
        again.ran == ["build"] and again.stage("build").why == "input changed: build.exclude_list"
    )

    backwards = cli("run", "cats.yaml", "--from", "export", "--until", "build")
    assert backwards.exit_code == 2 and "comes after" in backwards.output
    no_book = cli("run", "cats.yaml", "--until", "book", "--dry-run")
    assert no_book.exit_code == 2 and "no book: section" in no_book.output


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"clases": ["Cat"]}, ["unknown key clases; did you mean classes?", "valid keys here"]),
        ({"classes": ["Cat"], "build": {"sise": 96}}, ["build.sise; did you mean size?", "aspect"]),
        ({"classes": ["Cat"], "build": {"size": 8}}, ["build.size", "16", "(got 8)"]),
        ({"classes": ["Cat"], "train": {"epoch": 3}}, ["train.epoch; did you mean epochs?"]),
        ({"classes": ["Cat"], "train": {"mode": "fast"}}, ["train.mode", "probe"]),
        ({"classes": ["Cat"], "book": {"titel": "X"}}, ["unknown settings titel", "title"]),
        ({"classes": ["Cat"], "present": {"target": 2}}, ["present.target", "(got 2)"]),
        ({"select": {"classes": [{"name": "Cat", "expnd": True}]}}, ["classes[0].expnd"]),
    ],
)
def test_a_bad_spec_names_the_key_and_the_valid_ones(
    tmp_path: Path, spec: dict[str, Any], expected: list[str]
) -> None:
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(spec))
    res = cli("run", str(tmp_path / "bad.yaml"), "--dry-run")
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "Traceback" not in text and all(e in text for e in expected), text


def test_a_second_run_in_the_same_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cats.yaml").write_text("classes: [Cat]\n")
    (tmp_path / "cats").mkdir()
    with (tmp_path / "cats" / ".oiforge-run.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        res = cli("run", str(tmp_path / "cats.yaml"), "--out", str(tmp_path / "cats"))
    assert res.exit_code == 2 and "another `oiforge run` is working in" in res.output
