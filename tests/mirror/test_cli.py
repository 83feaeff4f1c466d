"""`oiforge mirror make-sample|serve` through the real CLI, and determinism of the sample."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers.mirror import fetch
from typer.testing import CliRunner

from oiforge.cli import app
from oiforge.mirror.plan import plan_images

runner = CliRunner()
ENV = {"COLUMNS": "200", "NO_COLOR": "1"}


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.slow
def test_make_sample_cli_is_deterministic(sample_root: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["mirror", "make-sample", str(tmp_path), "--seed", "0"], env=ENV)
    assert result.exit_code == 0, result.output
    assert "786 images" in result.output  # 36 x 15, 6 demo classes x 40, 60 people, 36 multi-label
    again, first = _tree(tmp_path), _tree(sample_root)
    assert again.keys() == first.keys()
    assert [k for k in first if again[k] != first[k]] == []


def test_other_seeds_give_other_samples() -> None:
    ids0 = [im.image_id for im in plan_images(0)]
    assert ids0 == [im.image_id for im in plan_images(0)]
    assert set(ids0).isdisjoint(im.image_id for im in plan_images(1))


def test_make_sample_scaled_cli(tmp_path: Path) -> None:
    args = ["mirror", "make-sample", str(tmp_path), "--scale", "3000"]
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    meta = tmp_path / "openimages"
    widths = {
        "v6/oidv6-train-annotations-bbox.csv": 21,
        "v7/oidv7-train-annotations-human-imagelabels.csv": 4,
        "2018_04/train/train-images-boxable-with-rotation.csv": 12,
    }
    for relpath, width in widths.items():
        with (meta / relpath).open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        assert all(len(r) == width for r in rows), relpath
        ids = [r[0] for r in rows[1:]]
        assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
        assert (ids == sorted(ids)) == (width != 12), relpath
    assert len(rows) - 1 == round(3000 * 9 / 14.6)
    assert {r[11] for r in rows[1:]} == {"", "0.0"}
    assert (
        b',""' not in (meta / "2018_04/train/train-images-boxable-with-rotation.csv").read_bytes()
    )
    assert (meta / "v7/oidv7-class-descriptions.csv").is_file()
    again = tmp_path / "again"
    assert runner.invoke(app, [*args[:2], str(again), *args[3:]], env=ENV).exit_code == 0
    assert _tree(again / "openimages") == _tree(meta)


def test_bad_input_exits_2(tmp_path: Path, sample_root: Path) -> None:
    missing = runner.invoke(app, ["mirror", "serve", "--root", str(tmp_path / "nope")], env=ENV)
    assert missing.exit_code == 2
    assert "not a directory" in missing.output
    bad = ["mirror", "serve", "--root", str(sample_root), "--fault", "/a=teapot"]
    assert runner.invoke(app, bad, env=ENV).exit_code == 2
    scale = runner.invoke(app, ["mirror", "make-sample", str(tmp_path), "--scale", "0"], env=ENV)
    assert scale.exit_code == 2


def test_serve_cli_in_a_subprocess(sample_root: Path) -> None:
    command = [sys.executable, "-c", "from oiforge.cli import main; main()", "mirror", "serve",
               "--root", str(sample_root), "--port", "0", "--fault", "/flickr/*=410"]  # fmt: skip
    env = {**os.environ, **ENV}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            url = re.search(r"http://127\.0\.0\.1:\d+", line)
            assert url, line
            base = url.group(0)
            assert fetch(f"{base}/flickr/a.example/x.jpg").status == 410
            csv_path = "/openimages/v7/oidv7-class-descriptions.csv"
            reply = fetch(base + csv_path, headers={"Range": "bytes=0-9"})
            assert (reply.status, reply.body) == (206, b"LabelName,")
            stats = json.loads(fetch(f"{base}/_mirror/stats").body)
            assert stats["requests"] == {"/flickr/a.example/x.jpg": 1, csv_path: 1}
        finally:
            proc.terminate()
            proc.wait(timeout=30)
