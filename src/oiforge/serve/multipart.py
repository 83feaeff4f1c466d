"""Split a ``multipart/form-data`` body that is already in memory into its parts.

The service reads a request's whole body before parsing it (it is capped by
``--max-upload-mb`` and every image must be in memory to be decoded anyway), so the parts are
found with ``bytes.find`` over that one buffer: no per-chunk callbacks, no spooled temporary
files, one copy per part. Header values (``Content-Disposition`` parameters, the boundary) are
parsed by python-multipart's ``parse_options_header``, as Starlette's form parser does.
Malformed bodies raise :class:`MultipartError` with a message fit for the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from python_multipart.multipart import parse_options_header

CRLF: Final = b"\r\n"
#: Form fields that are not files, at most (``top_k`` is the only one the API reads).
MAX_FIELDS: Final = 8


class MultipartError(ValueError):
    """A body that is not well-formed ``multipart/form-data``."""


class TooManyFiles(MultipartError):
    """More file parts than the caller allows (parsing stops at the first one too many)."""


@dataclass(frozen=True)
class FormPart:
    name: str
    filename: str | None  # None: a plain field, not a file
    content_type: str  # lower-cased media type without parameters; "" when not given
    data: bytes


def _text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter of a ``multipart/form-data`` Content-Type header."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary", b"")
    if not boundary or len(boundary) > 200:
        raise MultipartError("multipart body without a valid boundary parameter")
    return boundary


def _part(head: bytes, data: bytes) -> FormPart:
    disposition, ctype = b"", b""
    for line in head.split(CRLF):
        name, sep, value = line.partition(b":")
        if not sep:
            raise MultipartError("multipart part header without a colon")
        key = name.strip().lower()
        if key == b"content-disposition":
            disposition = value.strip()
        elif key == b"content-type":
            ctype = value.strip()
    _, options = parse_options_header(disposition)
    if b"name" not in options:
        raise MultipartError('a multipart part without a Content-Disposition "name"')
    filename = options.get(b"filename")
    media = ctype.split(b";", 1)[0].strip().lower()
    return FormPart(
        _text(options[b"name"]), None if filename is None else _text(filename), _text(media), data
    )


def _next_part(body: bytes, pos: int, delimiter: bytes) -> tuple[FormPart, int]:
    """The part that starts after the boundary line ending at ``pos``, and where it ends."""
    eol = body.find(CRLF, pos)
    if eol < 0 or body[pos:eol].strip(b" \t"):
        raise MultipartError("malformed multipart boundary line")
    head_end = body.find(CRLF + CRLF, eol)
    if head_end < 0:
        raise MultipartError("multipart part without the blank line after its headers")
    end = body.find(delimiter, head_end + 4)
    if end < 0:
        raise MultipartError("multipart body without its closing boundary")
    if head_end == eol:
        raise MultipartError("a multipart part without headers")
    return _part(body[eol + 2 : head_end], body[head_end + 4 : end]), end


def split_form(body: bytes, boundary: bytes, max_files: int) -> list[FormPart]:
    """Every part of ``body``, in order; raises ``TooManyFiles`` past ``max_files`` files."""
    dash = b"--" + boundary
    start = 0 if body.startswith(dash) else body.find(CRLF + dash)
    if start < 0:
        raise MultipartError("the multipart body does not contain its boundary")
    delimiter = CRLF + dash
    pos = start + (len(dash) if start == 0 else len(delimiter))
    parts: list[FormPart] = []
    files = 0
    while not body.startswith(b"--", pos):
        part, end = _next_part(body, pos, delimiter)
        parts.append(part)
        files += part.filename is not None
        if files > max_files:
            raise TooManyFiles(f"more than {max_files} files")
        if len(parts) - files > MAX_FIELDS:
            raise MultipartError(f"more than {MAX_FIELDS} form fields that are not files")
        pos = end + len(delimiter)
    return parts
