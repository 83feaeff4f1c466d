"""fetch through the real mirror on 127.0.0.1: placement, resume, MD5 checks, offline use."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from oiforge.catalog import FetchProgress, fetch, open_catalog
from oiforge.catalog.fetch import cached_path, fetch_file
from oiforge.catalog.files import official_files
from oiforge.endpoints import Endpoints
from oiforge.errors import ChecksumError, FetchError, StageError
from oiforge.headers import server_md5
from oiforge.mirror.server import MirrorServer

BOXES_VAL = "v5/validation-annotations-bbox.csv"


def _file(relpath: str, version: str = "v7"):  # type: ignore[no-untyped-def]
    return next(f for f in official_files(version) if f.relpath == relpath)


def test_fetch_places_verified_files_and_is_idempotent(
    endpoints: Endpoints, sample_root: Path, tmp_path: Path
) -> None:
    seen: list[FetchProgress] = []
    results = fetch("v7", ["boxes"], ["validation"], endpoints, tmp_path, seen.append)
    assert [r.status for r in results] == ["fetched"]
    got = results[0].path
    want = sample_root / "openimages" / BOXES_VAL
    assert got == tmp_path / "metadata" / BOXES_VAL
    assert got.read_bytes() == want.read_bytes()
    assert results[0].md5_hex == hashlib.md5(want.read_bytes()).hexdigest()
    assert seen and seen[-1].done == want.stat().st_size
    assert not list(got.parent.glob("*.part"))
    again = fetch("v7", ["boxes"], ["validation"], endpoints, tmp_path)
    assert [r.status for r in again] == ["cached"]


def test_truncated_transfer_keeps_the_part_and_resumes(sample_root: Path, tmp_path: Path) -> None:
    f = _file(BOXES_VAL)
    with MirrorServer(sample_root, faults=[f"/openimages/{BOXES_VAL}=truncate:4000"]) as srv:
        with pytest.raises(FetchError) as err:
            fetch_file(f, Endpoints.for_mirror(srv.url), tmp_path)
        assert "rerun to resume" in str(err.value)
    part = cached_path(f, tmp_path).with_name(Path(BOXES_VAL).name + ".part")
    kept = part.stat().st_size
    assert kept > 4000 and not cached_path(f, tmp_path).exists()  # never placed half-done
    seen: list[FetchProgress] = []
    with MirrorServer(sample_root, faults=[]) as srv:
        done = fetch_file(f, Endpoints.for_mirror(srv.url), tmp_path, seen.append)
    assert done.status == "fetched"
    assert seen[0].done > kept  # continued from the part, not from byte 0
    assert done.path.read_bytes() == (sample_root / "openimages" / BOXES_VAL).read_bytes()


def test_server_errors_are_retried(sample_root: Path, tmp_path: Path) -> None:
    rel = "v7/oidv7-val-annotations-human-imagelabels.csv"
    with MirrorServer(sample_root, faults=[f"/openimages/{rel}=burst:2"]) as srv:
        got = fetch_file(_file(rel), Endpoints.for_mirror(srv.url), tmp_path)
        assert got.status == "fetched"


def test_wrong_bytes_are_downloaded_twice_then_refused(sample_root: Path, tmp_path: Path) -> None:
    f = _file(BOXES_VAL)
    with MirrorServer(sample_root, faults=[f"/openimages/{BOXES_VAL}=wrong"]) as srv:
        with pytest.raises(ChecksumError):
            fetch_file(f, Endpoints.for_mirror(srv.url), tmp_path)
        assert srv.request_counts()[f"/openimages/{BOXES_VAL}"] == 2
    assert not cached_path(f, tmp_path).exists()
    assert not list(cached_path(f, tmp_path).parent.glob("*.part"))


def test_fetch_reports_failures_as_values(sample_root: Path, tmp_path: Path) -> None:
    with MirrorServer(sample_root, faults=["/openimages/v5/test-annotations-bbox.csv=404"]) as srv:
        results = fetch("v7", ["boxes"], None, Endpoints.for_mirror(srv.url), tmp_path)
    status = {r.file.split: r.status for r in results}
    assert status == {"train": "fetched", "validation": "fetched", "test": "failed"}
    failed = next(r for r in results if r.status == "failed")
    assert failed.error and "404" in failed.error


def test_open_catalog_offline_and_without_fetching(tmp_path: Path) -> None:
    dead = Endpoints(metadata_base="http://127.0.0.1:9/openimages")
    cat = open_catalog("v7", dead, tmp_path, fetch_missing=False)
    assert cat.resolve("Cat").boxable
    with pytest.raises(StageError, match="oiforge catalog fetch"):
        cat.ensure(["boxes"])
    with pytest.raises(FetchError):
        open_catalog("v7", dead, tmp_path).ensure(["boxes"], ["test"])


def test_server_md5_header() -> None:
    assert server_md5(["crc32c=n03x6A==,md5=Kqy5GbIHxQ8qCEgipcJzbA=="]) == (
        "2aacb919b207c50f2a084822a5c2736c"
    )
    assert server_md5(["crc32c=n03x6A=="]) is None
    assert server_md5(["md5=not-base64!"]) is None
