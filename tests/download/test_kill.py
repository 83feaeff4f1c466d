"""SIGKILL the real CLI mid-run several times, rerun, and check the store and the journal."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from tests.helpers.download import sample_images, sample_selection, store_files

from oiforge.download import read_journal
from oiforge.mirror.faults import load_rules
from oiforge.mirror.server import MirrorServer

CLI = [sys.executable, "-c", "from oiforge.cli import main; main()"]


def _ok_urls(store: Path) -> set[str]:
    if not (store / "journal.sqlite").exists():
        return set()
    rows = read_journal(store).to_pylist()
    return {"/" + r["url"].split("/", 3)[3] for r in rows if r["status"] == "ok"}


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "COLUMNS": "100"}
    with log.open("ab") as err:
        return subprocess.Popen([*CLI, *args], env=env, stdout=err, stderr=err)


def _kill_after_progress(proc: subprocess.Popen[bytes], store: Path, before: int) -> bool:
    """SIGKILL once a few more images are ok (or after a while), mid-run."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        if len(_ok_urls(store)) >= before + 2:
            break
        time.sleep(0.05)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return alive


@pytest.mark.slow
def test_sigkill_and_rerun_ends_with_right_bytes_and_no_refetch(
    sample_root: Path, tmp_path: Path
) -> None:
    images = sample_images(sample_root)[:40]
    sel, store, log = tmp_path / "selection.parquet", tmp_path / "store", tmp_path / "cli.log"
    pq.write_table(sample_selection(images), sel)
    rules = [*load_rules(sample_root / "faults.yaml"), "/open-images-dataset/*=slow:100000"]
    with MirrorServer(sample_root, faults=rules) as server:
        args = [
            "download", str(sel), "--out", str(store), "--mirror", server.url,
            "--connections", "6", "--retries", "1",
        ]  # fmt: skip
        for _ in range(3):
            ok_before = _ok_urls(store)
            server.reset()
            assert _kill_after_progress(_start(args, log), store, len(ok_before)), "not mid-run"
            assert not ok_before & set(server.request_counts()), "an ok image was fetched again"
        ok_before = _ok_urls(store)
        server.reset()
        final = _start(args, log)
        assert final.wait(timeout=120) == 0, log.read_text(errors="replace")
        assert not ok_before & set(server.request_counts()), "an ok image was fetched again"
    _check_final(store, images, sample_root)


def _check_final(store: Path, images: list[dict[str, Any]], sample_root: Path) -> None:
    rows = {r["image_id"]: r for r in read_journal(store).to_pylist()}
    assert set(rows) == {i["image_id"] for i in images}
    for img in images:
        row = rows[img["image_id"]]
        assert row["status"] == img["expected_status"], row
        assert row["status"] == "ok" or row["error"]
    files = store_files(store)
    assert sorted(p.stem for p in files) == sorted(
        i for i, r in rows.items() if r["status"] == "ok"
    )
    for path in files:  # the right bytes: what the mirror serves at the recorded URL
        row = rows[path.stem]
        served = sample_root / row["url"].split("/", 3)[3]
        assert path.read_bytes() == served.read_bytes()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]
    assert not list((store / ".tmp").iterdir()), "a temp file was left behind"
