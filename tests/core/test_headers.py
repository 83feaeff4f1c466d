"""The shared HTTP header parsers: Retry-After and the MD5 a server vouches for."""

from __future__ import annotations

import base64
import email.utils
import hashlib

from hypothesis import given
from hypothesis import strategies as st

from oiforge.headers import goog_hash_md5, md5_b64_to_hex, retry_after_s, server_md5


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
