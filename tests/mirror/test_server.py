"""The mirror over real HTTP on 127.0.0.1: files, Range, Content-Length, hashes, stats."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.mirror import fetch, fetch_all

from oiforge.endpoints import Endpoints
from oiforge.mirror.server import MirrorServer

CLASS_LIST = "v7/oidv7-class-descriptions.csv"


@pytest.fixture(scope="module")
def clean_mirror(sample_root: Path) -> Iterator[MirrorServer]:
    """The sample served without any fault rule."""
    with MirrorServer(sample_root, faults=[]) as server:
        yield server


def _facts(root: Path) -> dict:
    return json.loads((root / "sample.json").read_text(encoding="utf-8"))


def test_metadata_file_with_gcs_headers(mirror: MirrorServer, sample_root: Path) -> None:
    data = (sample_root / "openimages" / CLASS_LIST).read_bytes()
    reply = fetch(Endpoints.for_mirror(mirror.url).metadata_url(CLASS_LIST))
    assert reply.status == 200
    assert reply.body == data
    assert reply.headers["Content-Length"] == str(len(data))
    md5 = hashlib.md5(data).digest()
    assert reply.headers["x-goog-hash"] == f"md5={base64.b64encode(md5).decode()}"
    assert reply.headers["ETag"] == f'"{md5.hex()}"'
    assert reply.headers["Accept-Ranges"] == "bytes"


def test_head_has_length_and_no_body(mirror: MirrorServer, sample_root: Path) -> None:
    size = (sample_root / "openimages" / CLASS_LIST).stat().st_size
    reply = fetch(f"{mirror.url}/openimages/{CLASS_LIST}", method="HEAD")
    assert reply.status == 200
    assert reply.headers["Content-Length"] == str(size)
    assert reply.body == b""


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-9", 0, 9), ("bytes=100-", 100, None), ("bytes=-50", -50, None),
     ("bytes=10-99999999", 10, None)],
)  # fmt: skip
def test_range_requests(
    mirror: MirrorServer, sample_root: Path, header: str, start: int, end: int | None
) -> None:
    data = (sample_root / "openimages" / CLASS_LIST).read_bytes()
    expected = data[start : None if end is None else end + 1]
    reply = fetch(f"{mirror.url}/openimages/{CLASS_LIST}", headers={"Range": header})
    assert reply.status == 206
    assert reply.body == expected
    assert reply.headers["Content-Length"] == str(len(expected))
    first = start % len(data)
    assert (
        reply.headers["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    )


@pytest.mark.parametrize("header", ["bytes=999999999-", "bytes=-0"])
def test_unsatisfiable_range_is_416(mirror: MirrorServer, sample_root: Path, header: str) -> None:
    size = (sample_root / "openimages" / CLASS_LIST).stat().st_size
    reply = fetch(f"{mirror.url}/openimages/{CLASS_LIST}", headers={"Range": header})
    assert reply.status == 416
    assert reply.headers["Content-Range"] == f"bytes */{size}"


@pytest.mark.parametrize("header", ["bytes=5-2", "lines=1-2", "bytes=0-1,5-6", "garbage"])
def test_unusable_range_serves_whole_file(mirror: MirrorServer, header: str) -> None:
    reply = fetch(f"{mirror.url}/openimages/{CLASS_LIST}", headers={"Range": header})
    assert reply.status == 200


def test_missing_and_outside_paths_are_404(mirror: MirrorServer) -> None:
    for path in ("/openimages/v7/nope.csv", "/sample.json", "/faults.yaml",
                 "/openimages/../sample.json", "/flickr/%2e%2e/sample.json"):  # fmt: skip
        assert fetch(mirror.url + path).status == 404, path


def test_every_original_matches_its_metadata(clean_mirror: MirrorServer, sample_root: Path) -> None:
    ep = Endpoints.for_mirror(clean_mirror.url)
    images = _facts(sample_root)["images"]
    bodies = fetch_all([ep.flickr_url(im["original_url"]) for im in images])
    for im, body in zip(images, bodies, strict=True):
        assert len(body) == im["original_size"]
        assert base64.b64encode(hashlib.md5(body).digest()).decode() == im["original_md5"]


def test_resized_and_thumbnails_are_served(clean_mirror: MirrorServer, sample_root: Path) -> None:
    ep = Endpoints.for_mirror(clean_mirror.url)
    images = _facts(sample_root)["images"]
    present = [im for im in images if im["has_resized"]][:20]
    for body in fetch_all([ep.resized_image_url(im["split"], im["image_id"]) for im in present]):
        assert body[:2] == b"\xff\xd8"
    for body in fetch_all([ep.flickr_url(im["thumbnail_url"]) for im in images[:20]]):
        assert body[:2] == b"\xff\xd8"
    absent = next(im for im in images if not im["has_resized"])
    assert fetch(ep.resized_image_url(absent["split"], absent["image_id"])).status == 404


def test_request_counts_in_python_and_over_http(sample_root: Path) -> None:
    with MirrorServer(sample_root, faults=[]) as server:
        url = f"{server.url}/openimages/{CLASS_LIST}"
        fetch(url)
        fetch(url + "?x=1")
        fetch(f"{server.url}/flickr/nowhere.example/a.jpg")
        assert server.request_counts() == {
            f"/openimages/{CLASS_LIST}": 2,
            "/flickr/nowhere.example/a.jpg": 1,
        }
        stats = json.loads(fetch(f"{server.url}/_mirror/stats").body)
        assert stats["requests"] == server.request_counts()
        assert stats["total"] == 3
        assert fetch(f"{server.url}/_mirror/reset", method="POST").status == 200
        assert server.request_counts() == {}
