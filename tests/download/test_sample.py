"""The downloader against the mirror sample: planted faults end as the expected statuses."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.download import sample_images, sample_selection, store_files

from oiforge.download import DownloadConfig, ProgressUpdate, download, read_journal
from oiforge.endpoints import Endpoints
from oiforge.mirror.server import MirrorServer

FAST = DownloadConfig(backoff_s=0.01, backoff_max_s=1.5, connections=16)


@pytest.fixture(scope="module")
def own_mirror(sample_root: Path) -> Iterator[MirrorServer]:
    """A mirror over the sample with its planted faults, and request counts of our own."""
    with MirrorServer(sample_root) as server:
        yield server


@pytest.mark.slow
def test_sample_ends_with_expected_statuses_and_resumes_without_requests(
    sample_root: Path, own_mirror: MirrorServer, tmp_path: Path
) -> None:
    images = sample_images(sample_root)
    store, ep = tmp_path / "store", Endpoints.for_mirror(own_mirror.url)
    updates: list[ProgressUpdate] = []
    summary = download(sample_selection(images), store, FAST, ep, progress=updates.append)
    rows = {r["image_id"]: r for r in read_journal(store).to_pylist()}
    assert {i: rows[i]["status"] for i in _by_id(images)} == {
        i: img["expected_status"] for i, img in _by_id(images).items()
    }
    assert summary.attempted == len(images) and updates[-1].done == len(images)
    _check_store(store, rows, sample_root)
    stats = json.loads((store / "stats.json").read_text())
    assert stats["successes"] == summary.ok and stats["config"]["connections"] == 16

    own_mirror.reset()
    again = download(sample_selection(images), store, FAST, ep)
    asked = own_mirror.request_counts()
    ok_urls = {_path(r["url"]) for r in rows.values() if r["status"] == "ok"}
    assert not ok_urls & set(asked), "an ok image was requested again"
    assert again.skipped + again.attempted == len(images)
    assert set(again.statuses) <= {"error", "timeout"}  # only transient failures retried


def _by_id(images: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {img["image_id"]: img for img in images}


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def _check_store(store: Path, rows: dict[str, dict[str, Any]], sample_root: Path) -> None:
    """Every ok image is in the store with the journal's sha256 and the served bytes; no
    other file (no placeholder, no partial file) is."""
    ok = {i: r for i, r in rows.items() if r["status"] == "ok"}
    files = store_files(store)
    assert [p.name for p in files] == sorted(f"{i}.jpg" for i in ok)
    for path in files:
        row = ok[path.stem]
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"] and len(data) == row["bytes"]
        served = sample_root / _path(row["url"]).lstrip("/")
        assert data == served.read_bytes()
