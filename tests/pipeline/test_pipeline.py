"""The newcomer's path, end to end through the real CLI against a live mirror (smaller than
`make demo`): catalog → select → download → build → train → evaluate → export → predict → book.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow


def _oiforge(env: dict[str, str], *args: str) -> str:
    cmd = [sys.executable, "-m", "oiforge.cli", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture()
def cli_env(mirror: object, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OIFORGE_MIRROR=mirror.url,  # type: ignore[attr-defined]
        OIFORGE_HOME=str(tmp_path / "home"),
        COLUMNS="120",
    )
    return env


def test_the_whole_pipeline_runs_offline(cli_env: dict[str, str], tmp_path: Path) -> None:
    run = lambda *a: _oiforge(cli_env, *a)  # noqa: E731
    run("catalog", "fetch", "--version", "v7")
    sel = tmp_path / "selection.parquet"
    run(
        "select", "Cat", "Zebra", "Strawberry", "--exclude-images-with", "Person", "--out", str(sel)
    )
    table = pq.read_table(sel)
    assert set(table.column("label_name").to_pylist()) == {"Cat", "Zebra", "Strawberry"}

    store, dataset, run_dir = tmp_path / "store", tmp_path / "dataset", tmp_path / "run"
    run("download", str(sel), "--out", str(store), "--max-side", "256")
    run(
        "build",
        "--selection",
        str(sel),
        "--store",
        str(store),
        "--out",
        str(dataset),
        "--format",
        "folders",
        "--size",
        "96",
    )
    run("verify", str(dataset))
    assert {p.name for p in (dataset / "train").iterdir()} == {"Cat", "Zebra", "Strawberry"}

    run(
        "train",
        str(dataset),
        "--out",
        str(run_dir),
        "--mode",
        "probe",
        "--image-size",
        "96",
        "--epochs",
        "3",
        "--workers",
        "0",
    )
    run("evaluate", str(run_dir), "--workers", "0")
    assert (run_dir / "report.html").stat().st_size > 1000
    run("export", str(run_dir))
    some = sorted((dataset / "test").rglob("*.jpg"))[:2]
    out = json.loads(run("predict", str(run_dir / "model.onnx"), *map(str, some), "--json"))
    assert len(out) == 2

    book = tmp_path / "book"
    run(
        "book",
        "--out",
        str(book),
        "--max-photos",
        "4",
        "--pick",
        "A=Apple,B=Banana",
        "--skip",
        "C,D,E,F,G,H,I,J,K,L,M,N,O,P,Q,R,S,T,U,V,W,X,Y,Z",
    )
    credits = json.loads((book / "attribution.json").read_text())
    assert credits and (book / "interior.pdf").read_bytes().startswith(b"%PDF")
