"""The multipart splitter against a standard encoder (urllib3's), and on arbitrary bytes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from urllib3.fields import RequestField
from urllib3.filepost import encode_multipart_formdata

from oiforge.serve.inputs import (
    MAX_FIELDS,
    MultipartError,
    TooManyFiles,
    boundary_of,
    split_form,
)

NAMES = st.text(st.characters(codec="utf-8", exclude_characters='"\r\n\\'), min_size=1, max_size=12)
TYPES = st.sampled_from(["image/jpeg", "image/png", "application/octet-stream", "text/plain"])
PART = st.tuples(NAMES, st.none() | NAMES, TYPES, st.binary(max_size=300))


def _encode(parts: list[tuple[str, str | None, str, bytes]]) -> tuple[bytes, str]:
    fields = []
    for name, filename, ctype, data in parts:
        field = RequestField(name, data, filename=filename)
        field.make_multipart(content_type=ctype if filename is not None else None)
        fields.append(field)
    return encode_multipart_formdata(fields)


@given(st.lists(PART, min_size=1, max_size=6))
def test_every_part_comes_back_as_encoded(parts: list[tuple[str, str | None, str, bytes]]) -> None:
    files = sum(filename is not None for _, filename, _, _ in parts)
    body, content_type = _encode(parts)
    if len(parts) - files > MAX_FIELDS:
        return
    got = split_form(body, boundary_of(content_type), max_files=16)
    assert [(p.name, p.filename, p.data) for p in got] == [
        (name, filename, data) for name, filename, _, data in parts
    ]
    assert [p.content_type for p, (_, f, _, _) in zip(got, parts, strict=True) if f] == [
        ctype for _, f, ctype, _ in parts if f
    ]


FRAGMENTS = st.sampled_from(
    [b"--b", b"--b--", b"\r\n", b"\r\n\r\n", b": ", b"Content-Disposition: form-data",
     b'; name="image"', b'; filename="a.jpg"', b"Content-Type: image/jpeg", b" "]
) | st.binary(max_size=4)  # fmt: skip


@given(st.lists(FRAGMENTS, max_size=40))
def test_arbitrary_bodies_split_or_raise_the_named_error(fragments: list[bytes]) -> None:
    with contextlib.suppress(MultipartError):
        for part in split_form(b"".join(fragments), b"b", max_files=4):
            assert part.name


def test_too_many_files_stops_early_and_a_missing_end_is_an_error() -> None:
    body, content_type = _encode([("image", f"{i}.jpg", "image/jpeg", b"x") for i in range(5)])
    boundary = boundary_of(content_type)
    with pytest.raises(TooManyFiles):
        split_form(body, boundary, max_files=4)
    with pytest.raises(MultipartError, match="closing boundary"):
        split_form(body[: body.rindex(b"\r\n--")], boundary, max_files=8)
    with pytest.raises(MultipartError, match="boundary"):
        boundary_of("multipart/form-data")
