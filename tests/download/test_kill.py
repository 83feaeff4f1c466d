"""SIGKILL the real CLI mid-run several times, rerun, and check the store and the journal."""

from __future__ import annotations

import hashlib
import json
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


def _ok_ids(store: Path) -> set[str]:
    if not (store / "journal.sqlite").exists():
        return set()
    rows = read_journal(store).to_pylist()
    return {r["image_id"] for r in rows if r["status"] == "ok"}


def _stored_ids(store: Path) -> set[str]:
    """Images whose file is in the store, journaled or not."""
    return {p.stem for p in store.glob("??/*.jpg")}


def _urls(images: list[dict[str, Any]], ids: set[str]) -> set[str]:
    """Both sources' URL paths of the images ``ids``: none may be fetched again."""
    return {
        url
        for img in images
        if img["image_id"] in ids
        for url in (
            f"/open-images-dataset/{img['split']}/{img['image_id']}.jpg",
            "/flickr/" + img["original_url"].split("://", 1)[1],
        )
    }


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "COLUMNS": "100"}
    with log.open("ab") as err:
        return subprocess.Popen([*CLI, *args], env=env, stdout=err, stderr=err)


def _kill_between_rename_and_journal(proc: subprocess.Popen[bytes], store: Path) -> set[str]:
    """SIGKILL mid-run, at a moment when a file is in the store but not yet in the journal
    (the process is stopped to look, so the moment is certain); returns those images."""
    deadline, before = time.monotonic() + 30, len(_ok_ids(store))
    while time.monotonic() < deadline and proc.poll() is None:
        if len(_ok_ids(store)) >= before + 2 and len(_stored_ids(store)) > len(_ok_ids(store)):
            proc.send_signal(signal.SIGSTOP)
            unjournaled = _stored_ids(store) - _ok_ids(store)
            if unjournaled:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return unjournaled
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    raise AssertionError("the run ended before a file was seen between rename and journal")


@pytest.mark.slow
def test_sigkill_and_rerun_ends_with_right_bytes_and_no_refetch(
    sample_root: Path, tmp_path: Path
) -> None:
    """Killed three times, each time with an image renamed into the store but not journaled:
    the rerun adopts it (hash checked) instead of fetching it again."""
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
            stored = _stored_ids(store)
            server.reset()
            assert _kill_between_rename_and_journal(_start(args, log), store)
            assert not _urls(images, stored) & set(server.request_counts()), (
                "a stored image was fetched again"
            )
        stored = _stored_ids(store)
        server.reset()
        final = _start(args, log)
        assert final.wait(timeout=120) == 0, log.read_text(errors="replace")
        assert not _urls(images, stored) & set(server.request_counts())
    assert "adopted" in log.read_text(errors="replace")
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


def test_without_a_written_log_only_a_byte_exact_original_is_adopted(
    sample_root: Path, tmp_path: Path
) -> None:
    """A dead run's temp folder without its log (an OS crash can lose it): an unjournaled file
    equal to the Flickr original (OriginalMD5) is adopted; a resized copy, whose source the
    store cannot tell, is fetched again."""
    from oiforge.download import DownloadConfig, download
    from oiforge.endpoints import Endpoints

    def resized_differs(img: dict[str, Any]) -> bool:
        resized = sample_root / "open-images-dataset" / img["split"] / f"{img['image_id']}.jpg"
        original = sample_root / "flickr" / img["original_url"].split("://", 1)[1]
        return resized.read_bytes() != original.read_bytes()

    images = [i for i in sample_images(sample_root) if i["fault"] == "none"]
    images = [i for i in images if resized_differs(i)][:4]
    store = tmp_path / "store"
    with MirrorServer(sample_root, faults=[]) as server:
        ep = Endpoints.for_mirror(server.url)
        download(sample_selection(images[:2]), store, DownloadConfig(sources=("original",)), ep)
        download(sample_selection(images[2:]), store, DownloadConfig(sources=("resized",)), ep)
        (store / "journal.sqlite").unlink()  # the rows were lost with the crash
        (store / ".tmp" / "999999999-0a0a0a0a").mkdir()  # a dead run's folder, no log
        server.reset()
        summary = download(sample_selection(images), store, DownloadConfig(), ep)
        asked = set(server.request_counts())
    assert summary.adopted == 2
    assert asked == _urls(images[2:], {i["image_id"] for i in images[2:]}) - {
        "/flickr/" + i["original_url"].split("://", 1)[1] for i in images[2:]
    }
    rows = {r["image_id"]: r for r in read_journal(store).to_pylist()}
    assert all(rows[i["image_id"]]["source"] == "original" for i in images[:2])
    assert all(rows[i["image_id"]]["status"] == "ok" for i in images)


def test_a_failed_store_sync_journals_no_image_as_ok(
    sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: the journal says ``ok`` only after the store's sync. When the sync fails
    the run stops with a named error and no ``ok`` row; a rerun ends with the right bytes."""
    import errno

    import oiforge.download.runner as runner
    from oiforge.download import DownloadConfig, download
    from oiforge.endpoints import Endpoints
    from oiforge.errors import StageError

    def broken(path: Path) -> None:
        raise OSError(errno.EIO, "Input/output error", str(path))

    images = [i for i in sample_images(sample_root) if i["fault"] == "none"][:6]
    store, cfg = tmp_path / "store", DownloadConfig(sources=("resized",), connections=2)
    with MirrorServer(sample_root, faults=[]) as server:
        ep = Endpoints.for_mirror(server.url)
        with monkeypatch.context() as patched:
            patched.setattr(runner, "sync_filesystem", broken)
            with pytest.raises(StageError, match="cannot sync the store"):
                download(sample_selection(images), store, cfg, ep)
        assert not _ok_ids(store)
        again = download(sample_selection(images), store, cfg, ep)
    assert again.ok == len(images)
    for img in images:
        served = sample_root / "open-images-dataset" / img["split"] / f"{img['image_id']}.jpg"
        stored = store / img["image_id"][:2] / f"{img['image_id']}.jpg"
        assert stored.read_bytes() == served.read_bytes()


def test_an_ok_image_whose_file_is_gone_is_reopened_before_it_is_fetched_again(
    sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its ``ok`` row becomes ``error`` and is synced before the new file is written, so an
    OS crash in between cannot leave the old ``ok`` row over a file that never reached disk."""
    import oiforge.download.runner as runner
    from oiforge.atomic import sync_filesystem
    from oiforge.download import DownloadConfig, download
    from oiforge.endpoints import Endpoints

    images = [i for i in sample_images(sample_root) if i["fault"] == "none"][:2]
    store, cfg = tmp_path / "store", DownloadConfig(sources=("resized",), connections=1)
    gone = images[0]["image_id"]
    seen: list[str] = []

    def recording(path: Path) -> None:
        rows = {r["image_id"]: r for r in read_journal(store).to_pylist()}
        seen.append(rows[gone]["status"])
        sync_filesystem(path)

    with MirrorServer(sample_root, faults=[]) as server:
        ep = Endpoints.for_mirror(server.url)
        download(sample_selection(images), store, cfg, ep)
        (store / gone[:2] / f"{gone}.jpg").unlink()
        monkeypatch.setattr(runner, "sync_filesystem", recording)
        again = download(sample_selection(images), store, cfg, ep)
    assert again.ok == 1 and seen[0] == "error"
    assert (store / gone[:2] / f"{gone}.jpg").is_file() and gone in _ok_ids(store)


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc: ppid is the 2nd field after the name)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [Path(f"/proc/{p}/stat") for p in pids]
        if not [
            s for s in states if s.exists() and s.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        ]:
            return True
        time.sleep(0.02)
    return False


def _fetch_processes(proc: subprocess.Popen[bytes], store: Path) -> list[int]:
    """The run's fetch processes, once it has journaled a few images."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        children = _children(proc.pid)
        if len(children) == 2 and len(_ok_ids(store)) >= 3:
            return children
        time.sleep(0.01)
    raise AssertionError("no two fetch processes seen mid-run")


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["run", "fetch process"])
def test_two_fetch_processes_killed_mid_run_resume_without_duplicates(
    sample_root: Path, tmp_path: Path, victim: str
) -> None:
    """``--processes 2``: SIGKILL the run (its fetch processes die with it: no orphan writes
    into the store) or one fetch process (the run ends with a named reason, every image has a
    row, no hang); the rerun fetches the rest, each image once, the right bytes."""
    images = sample_images(sample_root)[:40]
    sel, store, log = tmp_path / "selection.parquet", tmp_path / "store", tmp_path / "cli.log"
    pq.write_table(sample_selection(images), sel)
    rules = [*load_rules(sample_root / "faults.yaml"), "/open-images-dataset/*=slow:100000"]
    args = ["download", str(sel), "--out", str(store), "--connections", "6", "--retries", "1",
            "--processes", "2"]  # fmt: skip
    with MirrorServer(sample_root, faults=rules) as server:
        run = _start([*args, "--mirror", server.url], log)
        children = _fetch_processes(run, store)
        if victim == "run":
            run.send_signal(signal.SIGKILL)
            assert run.wait(timeout=30) == -signal.SIGKILL
            assert _gone(children, timeout=10), "a fetch process outlived its run"
        else:
            os.kill(children[0], signal.SIGKILL)
            assert run.wait(timeout=60) == 1
            out = log.read_text(errors="replace")
            assert "fetch process" in out and "died (killed by SIGKILL)" in out, out
            assert "Traceback" not in out
            assert set(_ok_ids(store)) | _failed_ids(store) == {i["image_id"] for i in images}
        final = _start([*args, "--mirror", server.url], log)
        assert final.wait(timeout=120) == 0, log.read_text(errors="replace")
    assert json.loads((store / "stats.json").read_text())["processes"] == 2
    _check_final(store, images, sample_root)


def _failed_ids(store: Path) -> set[str]:
    return {r["image_id"] for r in read_journal(store).to_pylist() if r["status"] != "ok"}
