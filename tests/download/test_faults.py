"""Faults injected by the mirror, bad input and a full disk: each ends as a recorded status."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.download import sample_images, sample_selection, selection_table, store_files
from typer.testing import CliRunner

from oiforge.cli import app
from oiforge.download import DownloadConfig, download, read_journal
from oiforge.endpoints import Endpoints
from oiforge.mirror.server import MirrorServer

FAST = dict(backoff_s=0.01, backoff_max_s=1.5, connections=8)  # noqa: C408


@pytest.fixture(scope="module")
def clean(sample_root: Path) -> list[dict[str, Any]]:
    """Sample images with a resized copy and no planted fault."""
    return [i for i in sample_images(sample_root) if i["fault"] == "none"][:12]


def _run(root: Path, rules: list[str], images: list[dict[str, Any]], store: Path,
         **cfg: Any) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:  # fmt: skip
    with MirrorServer(root, faults=rules) as server:
        config = DownloadConfig(**{**FAST, **cfg})
        download(sample_selection(images), store, config, Endpoints.for_mirror(server.url))
        counts = server.request_counts()
    return {r["image_id"]: r for r in read_journal(store).to_pylist()}, counts


def _resized(img: dict[str, Any]) -> str:
    return f"/open-images-dataset/{img['split']}/{img['image_id']}.jpg"


def test_each_fault_on_the_only_source_is_its_status(
    sample_root: Path, clean: list[dict[str, Any]], tmp_path: Path
) -> None:
    kinds = ["404", "410", "html", "oversize:2", "slow:2000", "truncate", "placeholder", "503"]
    imgs = clean[: len(kinds)]
    rules = [f"{_resized(i)}={k}" for i, k in zip(imgs, kinds, strict=True)]
    rows, counts = _run(sample_root, rules, imgs, tmp_path, sources=("resized",), retries=1,
                        max_bytes=1 << 20, read_timeout_s=0.3, total_timeout_s=1.0)  # fmt: skip
    got = [rows[i["image_id"]]["status"] for i in imgs]
    assert got == ["http_404", "http_410", "not_image", "too_large", "timeout", "error",
                   "placeholder", "http_503"]  # fmt: skip
    assert counts[_resized(imgs[0])] == 1 and counts[_resized(imgs[1])] == 1  # no retry on 4xx
    assert counts[_resized(imgs[7])] == 2  # 5xx: retried once
    assert "truncated" in rows[imgs[5]["image_id"]]["error"]
    assert store_files(tmp_path) == []  # nothing but ok images is ever stored


def test_fallback_to_original_records_source_and_retry_after(
    sample_root: Path, clean: list[dict[str, Any]], tmp_path: Path
) -> None:
    a, b, c = clean[:3]
    rules = [f"{_resized(a)}=404", f"{_resized(b)}=truncate", f"{_resized(c)}=burst:2"]
    rows, _counts = _run(sample_root, rules, [a, b, c], tmp_path, retries=2)
    assert [rows[i["image_id"]]["source"] for i in (a, b)] == ["original", "original"]
    assert rows[c["image_id"]]["source"] == "resized" and rows[c["image_id"]]["attempts"] == 3
    assert all(r["status"] == "ok" for r in rows.values())
    original = sample_root / "flickr" / a["original_url"].split("://", 1)[1]
    assert (tmp_path / a["image_id"][:2] / f"{a['image_id']}.jpg").read_bytes() == (
        original.read_bytes()
    )


def test_malformed_ids_never_become_paths(sample_root: Path, tmp_path: Path) -> None:
    bad = ["../../../tmp/evil", "/etc/passwd", "ABCDEF0123456789", "0123", "a" * 17, "..", ""]
    store = tmp_path / "store"
    with MirrorServer(sample_root, faults=[]) as server:
        rows = [{"image_id": b, "split": "train", "original_url": "http://x/../y"} for b in bad]
        rows.append(
            {"image_id": "0123456789abcdef", "split": "nope", "thumbnail_url": "file:///etc/passwd"}
        )
        summary = download(selection_table(rows), store, DownloadConfig(**FAST),
                           Endpoints.for_mirror(server.url))  # fmt: skip
        assert server.request_counts() == {}
    journal = {r["image_id"]: r for r in read_journal(store).to_pylist()}
    assert summary.invalid_ids == len(bad) and journal["0123456789abcdef"]["status"] == "missing"
    assert all(journal[b]["status"] == "error" for b in bad)
    assert not [p for p in tmp_path.rglob("*") if p.suffix == ".jpg"]
    assert {p.parent for p in tmp_path.rglob("*") if p.is_file()} == {store}


class _FullDisk:
    """A writer whose disk fills up after ``room`` images."""

    def __init__(self, room: int) -> None:
        self.room = room

    def write(self, path: Path, data: bytes) -> None:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        self.room -= 1
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_full_disk_stops_cleanly_and_records_every_image(
    sample_root: Path, clean: list[dict[str, Any]], tmp_path: Path
) -> None:
    with MirrorServer(sample_root, faults=[]) as server:
        ep = Endpoints.for_mirror(server.url)
        cfg = DownloadConfig(**{**FAST, "connections": 1})
        summary = download(sample_selection(clean), tmp_path, cfg, ep, writer=_FullDisk(3))
        assert summary.stopped is not None and "disk is full" in summary.stopped
        rows = read_journal(tmp_path).to_pylist()
        assert len(rows) == len(clean) and sum(r["status"] == "ok" for r in rows) == 3
        assert all(r["status"] == "error" and r["error"] for r in rows if r["status"] != "ok")
        again = download(sample_selection(clean), tmp_path, cfg, ep)  # room again: resumes
    assert again.skipped == 3 and again.ok == len(clean) - 3


def test_real_full_tmpfs_leaves_no_partial_file(
    sample_root: Path, clean: list[dict[str, Any]], tmp_path: Path
) -> None:
    store = tmp_path / "small"
    store.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(store)],
                             capture_output=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        with MirrorServer(sample_root, faults=[]) as server:
            summary = download(sample_selection(clean), store, DownloadConfig(**FAST),
                               Endpoints.for_mirror(server.url))  # fmt: skip
        assert summary.stopped is not None
        ok = {r["image_id"] for r in read_journal(store).to_pylist() if r["status"] == "ok"}
        assert {p.stem for p in store_files(store)} == ok
    finally:
        subprocess.run(["umount", str(store)], check=False)


@pytest.mark.slow
def test_cli_download_status_and_bad_input(
    sample_root: Path, clean: list[dict[str, Any]], tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    runner = CliRunner()
    sel = tmp_path / "selection.parquet"
    pq.write_table(sample_selection(clean[:4]), sel)
    store = tmp_path / "store"
    with MirrorServer(sample_root, faults=[f"{_resized(clean[0])}=404"]) as server:
        args = ["download", str(sel), "--out", str(store), "--mirror", server.url,
                "--sources", "resized", "--max-side", "64"]  # fmt: skip
        result = runner.invoke(app, args, terminal_width=120)
    assert result.exit_code == 0, result.output
    assert "http_404" in result.output and "4 selected" in result.output
    status = runner.invoke(app, ["download", "--status", str(store)], terminal_width=120)
    assert status.exit_code == 0 and "ok" in status.output and "3" in status.output
    rows = read_journal(store).to_pylist()
    assert all(max(r["width"], r["height"]) <= 64 for r in rows if r["status"] == "ok")
    missing = runner.invoke(app, ["download", str(tmp_path / "none.parquet"), "--out", "x"])
    assert missing.exit_code == 2 and "not found" in missing.output
    bad = runner.invoke(app, ["download", str(sel), "--out", "x", "--sources", "ftp"])
    assert bad.exit_code == 2


def test_cli_a_body_that_differs_from_the_s3_etag_is_fetched_again_then_falls_back(
    sample_root: Path, clean: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The resized bucket's ETag is the MD5 of the object: a damaged body is never stored."""
    import pyarrow.parquet as pq

    images, damaged = clean[:6], clean[:3]
    sel = tmp_path / "selection.parquet"
    pq.write_table(sample_selection(images), sel)
    store, runner = tmp_path / "store", CliRunner()
    rules = [f"{_resized(i)}=wrong" for i in damaged]
    with MirrorServer(sample_root, faults=rules) as server:
        args = ["download", str(sel), "--out", str(store), "--mirror", server.url,
                "--retries", "1"]  # fmt: skip
        first = runner.invoke(app, args, terminal_width=120)
        counts = server.request_counts()
        server.reset()
        again = runner.invoke(app, args, terminal_width=120)
        assert server.request_counts() == {}, "a rerun fetched an image again"
        args[3] = str(tmp_path / "only")
        only = runner.invoke(app, [*args, "--sources", "resized"])
    assert first.exit_code == 0 and again.exit_code == 0 and only.exit_code == 0, first.output
    rows = {r["image_id"]: r for r in read_journal(store).to_pylist()}
    for img in images:
        row, is_damaged = rows[img["image_id"]], img in damaged
        assert row["status"] == "ok"
        assert row["source"] == ("original" if is_damaged else "resized")
        assert counts[_resized(img)] == (2 if is_damaged else 1)  # one retry, then fall back
        served = sample_root / row["url"].split("/", 3)[3]
        assert (store / img["image_id"][:2] / f"{img['image_id']}.jpg").read_bytes() == (
            served.read_bytes()
        )
    alone = {r["image_id"]: r for r in read_journal(tmp_path / "only").to_pylist()}
    for img in damaged:
        assert alone[img["image_id"]]["status"] == "bad_md5"
        assert "ETag" in alone[img["image_id"]]["error"]
    assert len(store_files(tmp_path / "only")) == len(images) - len(damaged)
