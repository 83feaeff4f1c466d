"""Header sniffing, body verification, selection reading, journal, image encoding."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from tests.helpers.download import jpeg_bytes, md5_b64, selection_table

from oiforge.contracts.journal import Journal
from oiforge.contracts.selection import read_selected_images as load_selection
from oiforge.download import JOURNAL_SCHEMA, DownloadConfig, JournalRow, read_journal
from oiforge.download.encode import Encoded, ImageJob, encode_image
from oiforge.download.verify import (
    NotAnImage,
    Rejection,
    check_body,
    is_placeholder_url,
    sniff_image,
)
from oiforge.errors import InvalidInputError, MalformedFileError, StageError
from oiforge.headers import header_md5

JPEG = jpeg_bytes(80, 60)


def test_sniff_reads_jpeg_png_gif_sizes() -> None:
    assert (sniff_image(JPEG).format, sniff_image(JPEG).width, sniff_image(JPEG).height) == (
        "jpeg",
        80,
        60,
    )
    for fmt in ("PNG", "GIF"):
        out = io.BytesIO()
        Image.new("RGB", (33, 21)).save(out, fmt)
        info = sniff_image(out.getvalue())
        assert (info.format, info.width, info.height) == (fmt.lower(), 33, 21)


@pytest.mark.parametrize(
    "body",
    [b"", b"<html><body>Not found</body></html>", JPEG[: len(JPEG) // 2], JPEG[:200], b"\xff\xd8"],
)
def test_sniff_refuses_non_images_and_truncated_jpegs(body: bytes) -> None:
    with pytest.raises(NotAnImage):
        sniff_image(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512), st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"]))
def test_sniff_never_fails_other_than_not_an_image(tail: bytes, head: bytes) -> None:
    try:
        info = sniff_image(head + tail)
    except NotAnImage:
        return
    assert info.width > 0 and info.height > 0


@settings(max_examples=50, deadline=None)
@given(st.integers(0, len(JPEG) - 3))
def test_every_cut_of_a_jpeg_is_refused(cut: int) -> None:
    with pytest.raises(NotAnImage):
        sniff_image(JPEG[:cut])


def test_check_body_md5_size_placeholder() -> None:
    good = check_body(JPEG, expected_md5_b64=md5_b64(JPEG), expected_size=len(JPEG))
    assert not isinstance(good, Rejection)
    wrong = bytearray(JPEG)
    wrong[len(wrong) // 2] ^= 0xFF
    bad = check_body(bytes(wrong), expected_md5_b64=md5_b64(JPEG), expected_size=len(JPEG))
    assert isinstance(bad, Rejection) and bad.status == "bad_md5"
    short = check_body(JPEG, expected_size=len(JPEG) + 1)
    assert isinstance(short, Rejection) and short.status == "bad_md5"
    html = check_body(b"<!doctype html><p>hi")
    assert isinstance(html, Rejection) and html.status == "not_image"
    import hashlib

    known = frozenset({hashlib.sha256(JPEG).hexdigest()})
    ph = check_body(JPEG, placeholder_sha256=known)
    assert isinstance(ph, Rejection) and ph.status == "placeholder"


def test_placeholder_urls_and_header_md5() -> None:
    assert is_placeholder_url(["https://s.yimg.com/pw/images/en-us/photo_unavailable.png"])
    assert not is_placeholder_url(["https://c1.staticflickr.com/5/4129/521_46f_o.jpg"])
    assert header_md5({"x-goog-hash": "crc32c=abc==,md5=XrY7u+Ae7tCTyyK7j1rNww=="}) == (
        "XrY7u+Ae7tCTyyK7j1rNww==",
        "x-goog-hash",
    )
    assert header_md5({"content-md5": " abc= "}) == ("abc=", "Content-MD5")
    assert header_md5({}) is None


def test_load_selection_dedupes_and_refuses_malformed_ids(tmp_path: Path) -> None:
    rows = [
        {"image_id": "000060e3121c7305", "split": "train", "label_mid": "/m/01"},
        {"image_id": "000060e3121c7305", "split": "train", "label_mid": "/m/02", "rotation": 90.0},
        {"image_id": "../../etc/passwd", "split": "train"},
        {"image_id": "000060E3121C7305", "split": "train"},
        {"image_id": "00000000000000aa", "split": "../x", "original_url": "ftp://x/y.jpg"},
    ]
    path = tmp_path / "selection.parquet"
    pq.write_table(selection_table(rows), path)
    sel = load_selection(path)
    assert [t.image_id for t in sel.tasks] == ["00000000000000aa", "000060e3121c7305"]
    assert sel.tasks[1].rotation == 90 and sel.tasks[0].split is None
    assert sorted(sel.invalid_ids) == ["../../etc/passwd", "000060E3121C7305"]
    with pytest.raises(InvalidInputError):
        load_selection(tmp_path / "nope.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(MalformedFileError):
        load_selection(tmp_path / "bad.parquet")


def test_journal_upserts_add_attempts_and_read_back(tmp_path: Path) -> None:
    with pytest.raises(StageError):
        read_journal(tmp_path)
    with Journal(tmp_path) as journal:
        journal.append([JournalRow("000060e3121c7305", "timeout", attempts=4)])
        journal.append([JournalRow("000060e3121c7305", "ok", "resized", bytes=10, attempts=1)])
    table = read_journal(tmp_path)
    assert table.schema == JOURNAL_SCHEMA
    assert table.to_pylist()[0]["attempts"] == 5 and table.to_pylist()[0]["status"] == "ok"


def test_encode_resizes_keeps_aspect_and_rotates() -> None:
    big = jpeg_bytes(640, 480)
    out = encode_image(ImageJob(big, 256, 85, rotation=0))
    assert isinstance(out, Encoded) and (out.width, out.height) == (256, 192)
    turned = encode_image(ImageJob(big, 256, 85, rotation=90))
    assert isinstance(turned, Encoded) and (turned.width, turned.height, turned.rotated) == (
        192,
        256,
        90,
    )
    exif = encode_image(ImageJob(jpeg_bytes(640, 480, exif_orientation=6), 256, 85, rotation=270))
    assert isinstance(exif, Encoded) and (exif.width, exif.height) == (192, 256)
    assert Image.open(io.BytesIO(exif.data)).getexif().get(0x0112) in (None, 1)
    small = encode_image(ImageJob(jpeg_bytes(100, 50), 256, 85, rotation=0))
    assert isinstance(small, Encoded) and (small.width, small.height) == (100, 50)
    junk = encode_image(ImageJob(b"\xff\xd8\xff" + b"\0" * 100, 256, 85, rotation=0))
    assert isinstance(junk, Rejection) and junk.status == "not_image"


@pytest.mark.parametrize(
    "kwargs",
    [{"sources": ()}, {"sources": ("resized", "ftp")}, {"max_side": 3}, {"connections": 0},
     {"jpeg_quality": 101}, {"read_timeout_s": 0}, {"rate_per_host": -1.0}],
)  # fmt: skip
def test_config_refuses_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        DownloadConfig(**kwargs)  # type: ignore[arg-type]


def test_download_works_inside_a_running_event_loop(
    endpoints: object, sample_root: Path, tmp_path: Path
) -> None:
    """Jupyter runs an event loop in the main thread: ``download`` must still work there."""
    import asyncio
    import json

    import pyarrow as pa

    from oiforge.contracts import SELECTION_SCHEMA
    from oiforge.download import DownloadConfig, download, status_counts

    facts = json.loads((sample_root / "sample.json").read_text())
    ok = [im for im in facts["images"] if im["expected_status"] == "ok"][:3]
    rows = {f.name: [None] * len(ok) for f in SELECTION_SCHEMA}
    rows["image_id"] = [im["image_id"] for im in ok]
    rows["split"] = [im["split"] for im in ok]
    rows["original_url"] = [im["original_url"] for im in ok]
    table = pa.table(rows, schema=SELECTION_SCHEMA)

    async def inside_a_loop() -> dict[str, int]:
        download(table, tmp_path / "store", DownloadConfig(), endpoints)  # type: ignore[arg-type]
        return status_counts(tmp_path / "store")

    assert asyncio.run(inside_a_loop()) == {"ok": 3}
