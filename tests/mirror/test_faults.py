"""Every fault kind observed over real HTTP, and the sample's planted faults end to end."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers.mirror import Reply, fetch

from oiforge.endpoints import Endpoints
from oiforge.errors import InvalidInputError
from oiforge.mirror.faults import dump_rules, load_rules, make_rule, parse_flag
from oiforge.mirror.handlers import RangeNotSatisfiable, corrupt, parse_range
from oiforge.mirror.server import MirrorServer

CSV = "/openimages/v7/oidv7-class-descriptions.csv"


@pytest.fixture()
def faulty(sample_root: Path) -> Iterator[MirrorServer]:
    rules = [
        "/openimages/v7/oidv7-class-descriptions.csv=wrong",
        "/openimages/v7/oidv7-class-descriptions-boxable.csv=truncate:1000",
        "/openimages/2018_04/bbox_labels_600_hierarchy.json=slow:1000",
        "/flickr/gone.example/*=410",
        "/flickr/err.example/*=500",
        "/flickr/moved.example/*=placeholder",
        "/flickr/html.example/*=html",
        "/flickr/huge.example/*=oversize:2",
        make_rule("/flickr/burst.example/*", "burst", 2, 503, retry_after=3),
    ]
    with MirrorServer(sample_root, faults=rules) as server:
        yield server


def test_status_faults(faulty: MirrorServer) -> None:
    assert fetch(f"{faulty.url}/flickr/gone.example/1/2_x_o.jpg").status == 410
    assert fetch(f"{faulty.url}/flickr/err.example/a.jpg").status == 500


def test_burst_fails_first_requests_per_path_then_serves(
    faulty: MirrorServer, sample_root: Path
) -> None:
    placeholder = "/flickr/burst.example/x.jpg"
    first, second, third = (fetch(faulty.url + placeholder) for _ in range(3))
    assert (first.status, second.status) == (503, 503)
    assert first.headers["Retry-After"] == "3"
    assert third.status == 404  # served normally: the file does not exist
    assert fetch(f"{faulty.url}/flickr/burst.example/other.jpg").status == 503
    fetch(f"{faulty.url}/_mirror/reset", method="POST")
    assert fetch(faulty.url + placeholder).status == 503


def test_wrong_bytes_keep_length_and_headers(faulty: MirrorServer, sample_root: Path) -> None:
    data = (sample_root / CSV.lstrip("/")).read_bytes()
    reply = fetch(faulty.url + CSV)
    assert reply.status == 200
    assert len(reply.body) == len(data)
    assert reply.body != data
    assert reply.body[:1024] == data[:1024]
    assert (
        reply.headers["x-goog-hash"]
        == "md5=" + base64.b64encode(hashlib.md5(data).digest()).decode()
    )
    ranged = fetch(faulty.url + CSV, headers={"Range": "bytes=1000-5000"})
    assert ranged.body == reply.body[1000:5001]


def test_truncated_body_announces_full_length(faulty: MirrorServer, sample_root: Path) -> None:
    path = "/openimages/v7/oidv7-class-descriptions-boxable.csv"
    size = (sample_root / path.lstrip("/")).stat().st_size
    reply = fetch(faulty.url + path)
    assert reply.headers["Content-Length"] == str(size)
    assert reply.error  # connection closed before Content-Length bytes arrived


async def _read_with_timeout(url: str, seconds: float) -> bytes:
    timeout = aiohttp.ClientTimeout(total=seconds)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
        return await resp.read()


def test_slow_body_trickles(faulty: MirrorServer, sample_root: Path) -> None:
    # 89 KB at 1,000 bytes/s takes ~90 s; the client gives up after 1 s.
    url = faulty.url + "/openimages/2018_04/bbox_labels_600_hierarchy.json"
    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(_read_with_timeout(url, 1.0))
    head = fetch(url, headers={"Range": "bytes=0-99"})
    assert head.body == (sample_root / url.split("/", 3)[3]).read_bytes()[:100]


def test_placeholder_redirect(faulty: MirrorServer) -> None:
    reply = fetch(f"{faulty.url}/flickr/moved.example/1/2_x_o.jpg", redirects=False)
    assert reply.status == 302
    assert reply.headers["Location"].endswith(
        "/flickr/s.yimg.com/pw/images/en-us/photo_unavailable.png"
    )
    followed = fetch(f"{faulty.url}/flickr/moved.example/1/2_x_o.jpg")
    assert (followed.status, followed.history) == (200, [302])
    assert followed.headers["Content-Type"] == "image/png"
    assert followed.body.startswith(b"\x89PNG")


def test_html_and_oversize(faulty: MirrorServer) -> None:
    html = fetch(f"{faulty.url}/flickr/html.example/a_o.jpg")
    assert html.status == 200
    assert html.headers["Content-Type"].startswith("text/html")
    assert b"<html>" in html.body
    huge = fetch(f"{faulty.url}/flickr/huge.example/a_o.jpg")
    assert huge.headers["Content-Length"] == str(2 * 1024 * 1024)
    assert len(huge.body) == 2 * 1024 * 1024 and huge.body[:2] == b"\xff\xd8"


def test_rules_round_trip_through_yaml(tmp_path: Path) -> None:
    rules = [parse_flag("/a/*=404"), parse_flag("*/b.jpg=burst:3"), parse_flag("/c=slow:10")]
    path = tmp_path / "faults.yaml"
    path.write_text(dump_rules(rules))
    assert load_rules(path) == rules


@pytest.mark.parametrize(
    "flag", ["no-equals", "/a=teapot", "/a=burst:x", "relative=404", "/a=200", "/a=slow:-1"]
)
def test_bad_fault_flags_are_named_errors(flag: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_flag(flag)


def test_bad_fault_file_is_a_named_error(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("rules: [{glob: /a, kind: nonsense}]")
    with pytest.raises(InvalidInputError):
        load_rules(path)
    path.write_text("rules: {not: a list}")
    with pytest.raises(InvalidInputError):
        load_rules(path)


@given(size=st.integers(0, 5000), a=st.integers(0, 6000), b=st.integers(0, 6000))
def test_parse_range_matches_slicing(size: int, a: int, b: int) -> None:
    data = bytes(range(256)) * 20
    data = data[:size]
    for header, expected in (
        (f"bytes={a}-{b}", data[a : b + 1]),
        (f"bytes={a}-", data[a:]),
        (f"bytes=-{b}", data[-b:] if b else b""),
    ):
        try:
            rng = parse_range(header, size)
        except RangeNotSatisfiable:
            assert expected == b""
            continue
        got = data if rng is None else data[rng.start : rng.end + 1]
        assert got == (data if rng is None else expected)
        if rng is None:
            assert header.startswith(f"bytes={a}-") and b < a


@given(data=st.binary(max_size=5000), cut=st.integers(0, 5000))
def test_corrupt_is_chunking_independent(data: bytes, cut: int) -> None:
    whole = corrupt(data, 0, len(data))
    parts = corrupt(data[:cut], 0, len(data)) + corrupt(data[cut:], min(cut, len(data)), len(data))
    assert whole == parts and len(whole) == len(data)
    assert (whole != data) == (len(data) > 0)


def _status_of_original(reply: Reply, md5: str) -> str:
    if reply.history:
        return "placeholder"
    if reply.status != 200:
        return f"http_{reply.status}"
    if reply.error:
        return "error"
    if not reply.headers["Content-Type"].startswith("image/") or reply.body[:2] != b"\xff\xd8":
        return "not_image"
    ok = base64.b64encode(hashlib.md5(reply.body).digest()).decode() == md5
    return "ok" if ok else "bad_md5"


def _download(ep: Endpoints, image: dict) -> str:
    """A reference downloader: resized bucket (retrying 5xx twice), then the Flickr original."""
    for _ in range(3):
        reply = fetch(ep.resized_image_url(image["split"], image["image_id"]))
        if reply.status < 500:
            break
    if reply.status == 200 and not reply.error:
        return "ok"
    return _status_of_original(fetch(ep.flickr_url(image["original_url"])), image["original_md5"])


def test_planted_faults_give_the_expected_status(sample_root: Path) -> None:
    facts = json.loads((sample_root / "sample.json").read_text())
    planted = [im for im in facts["images"] if im["fault"] != "none"]
    with MirrorServer(sample_root) as server:
        ep = Endpoints.for_mirror(server.url)
        for image in planted:
            assert _download(ep, image) == image["expected_status"], image["fault"]


def test_public_api_is_exactly_all() -> None:
    import pkgutil

    import oiforge.mirror as mirror

    modules = {m.name for m in pkgutil.iter_modules(mirror.__path__)}
    public = {n for n in dir(mirror) if not n.startswith("_")} - modules
    assert public == set(mirror.__all__)
