"""The shared HTTP header parsers: Retry-After and the MD5 a server vouches for."""

from __future__ import annotations

import base64
import email.utils
import hashlib

from hypothesis import given
from hypothesis import strategies as st

from oiforge.headers import (
    etag_md5,
    goog_hash_md5,
    header_md5,
    md5_b64_to_hex,
    retry_after_s,
    server_md5,
)


@given(st.text(max_size=40) | st.none())
def test_retry_after_never_raises_and_never_goes_negative(value: str | None) -> None:
    wait = retry_after_s(value)
    assert wait is None or wait >= 0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_700_000_000.0
    assert retry_after_s("7", now) == 7.0
    assert retry_after_s(" 2.5 ", now) == 2.5
    assert retry_after_s(email.utils.formatdate(now + 30, usegmt=True), now) == 30.0
    assert retry_after_s(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0
    for bad in (None, "", "soon", "-1", "inf", "nan"):
        assert retry_after_s(bad, now) is None


@given(st.binary(max_size=64), st.sampled_from(["md5", "MD5", " md5 "]), st.booleans())
def test_goog_hash_md5_finds_the_md5_item(body: bytes, key: str, two_headers: bool) -> None:
    b64 = base64.b64encode(hashlib.md5(body).digest()).decode()
    values = ["crc32c=n03x6A==", f"{key}={b64}"] if two_headers else [f"crc32c=x,{key}={b64}"]
    assert goog_hash_md5(values) == b64
    assert server_md5(values) == hashlib.md5(body).hexdigest()
    assert md5_b64_to_hex(b64) == hashlib.md5(body).hexdigest()


@given(st.text(max_size=40).filter(lambda t: "," not in t))
def test_md5_parsers_refuse_what_is_not_an_md5(text: str) -> None:
    hexed = md5_b64_to_hex(text)
    assert hexed is None or len(hexed) == 32
    assert goog_hash_md5([f"crc32c={text}"]) is None


@given(st.binary(max_size=64))
def test_an_s3_etag_of_a_single_part_object_is_its_md5(body: bytes) -> None:
    digest = hashlib.md5(body).hexdigest()
    assert etag_md5(f'"{digest}"') == digest
    assert etag_md5(f'"{digest.upper()}"') == digest
    assert header_md5({"etag": f'"{digest}"'}, etag=True) == (
        base64.b64encode(hashlib.md5(body).digest()).decode(),
        "ETag",
    )
    assert header_md5({"etag": f'"{digest}"'}) is None  # only where the ETag is an MD5


@given(st.text(max_size=48))
def test_etag_md5_refuses_weak_multipart_and_odd_etags(text: str) -> None:
    hexed = etag_md5(text)
    assert hexed is None or (len(hexed) == 32 and f'"{hexed}"' == text.strip().lower())
    md5 = "d41d8cd98f00b204e9800998ecf8427e"
    for bad in (f'W/"{md5}"', f'"{md5}-3"', md5, f'"{md5[:-1]}"', f'"{md5}0"', '""', None):
        assert etag_md5(bad) is None


def test_header_md5_prefers_content_md5_then_goog_hash_then_etag() -> None:
    etag = '"d41d8cd98f00b204e9800998ecf8427e"'
    both = {"content-md5": "AAAA", "x-goog-hash": "md5=BBBB", "etag": etag}
    assert header_md5(both, etag=True) == ("AAAA", "Content-MD5")
    assert header_md5({"x-goog-hash": "md5=BBBB", "etag": etag}, etag=True) == (
        "BBBB",
        "x-goog-hash",
    )
