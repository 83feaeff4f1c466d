"""Fetch official metadata files into the cache: resumable, verified, placed atomically.

A file is downloaded to ``<dest>.part`` (resumed with an HTTP ``Range`` request after a broken
transfer), checked against the known size/MD5 (``files.py``) or else the server's
``x-goog-hash: md5=...`` / ``Content-MD5`` header, then renamed to ``<dest>``. A file in the
cache is therefore always complete and verified. A checksum mismatch downloads the file once
more from scratch, then raises :class:`ChecksumError`; a partial file is never ingested.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from oiforge.atomic import fsync_dir, write_text_atomic
from oiforge.catalog.files import OfficialFile, official_files
from oiforge.endpoints import DEFAULT_METADATA_BASE, Endpoints
from oiforge.errors import ChecksumError, FetchError, OiforgeError
from oiforge.headers import md5_b64_to_hex, retry_after_s, server_md5
from oiforge.paths import oiforge_home

if TYPE_CHECKING:
    import http.client

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT_S = 60.0
MAX_RESUMES = 5
MAX_RETRY_AFTER_S = 30.0


@dataclass(frozen=True)
class FetchProgress:
    """Bytes done of one file (``total`` is ``None`` while unknown)."""

    relpath: str
    done: int
    total: int | None


ProgressFn = Callable[[FetchProgress], None]


@dataclass(frozen=True)
class FetchResult:
    """What happened to one file: ``cached`` (already there), ``fetched`` or ``failed``."""

    file: OfficialFile
    path: Path
    status: Literal["cached", "fetched", "failed"]
    md5_hex: str | None = None
    error: str | None = None


class _TransientError(Exception):
    """A 5xx/429 answer: worth another try."""


def _retry_after(value: str | None) -> float:
    wait = retry_after_s(value)
    return 0.5 if wait is None else min(wait, MAX_RETRY_AFTER_S)


@dataclass
class _Expect:
    size: int | None
    md5_hex: str | None


def metadata_dir(home: Path | None = None) -> Path:
    """Where fetched official files live: ``<home>/metadata/<relpath>``."""
    return (home or oiforge_home()) / "metadata"


def cached_path(file: OfficialFile, home: Path | None = None) -> Path:
    return metadata_dir(home) / file.relpath


def recorded_md5(path: Path) -> str | None:
    """The MD5 recorded when ``path`` was fetched, if any."""
    side = path.with_name(path.name + ".md5")
    return side.read_text().strip() if side.exists() else None


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    version: str = "v7",
    kinds: Iterable[str] | None = None,
    splits: Iterable[str] | None = None,
    endpoints: Endpoints | None = None,
    home: Path | None = None,
    progress: ProgressFn | None = None,
) -> list[FetchResult]:
    """Fetch the official files of ``version`` (optionally some kinds/splits) into the cache.

    Each file's outcome is a value; a file that fails does not stop the others.
    """
    ep = endpoints or Endpoints.from_env()
    files = official_files(
        version, tuple(kinds) if kinds else None, tuple(splits) if splits else None
    )
    results = []
    for f in files:
        try:
            results.append(fetch_file(f, ep, home, progress))
        except OiforgeError as exc:
            log.warning("fetch of %s failed: %s", f.relpath, exc)
            results.append(FetchResult(f, cached_path(f, home), "failed", error=str(exc)))
    return results


def fetch_file(
    file: OfficialFile,
    endpoints: Endpoints | None = None,
    home: Path | None = None,
    progress: ProgressFn | None = None,
) -> FetchResult:
    """Fetch one file unless the cache has it; raises ``FetchError``/``ChecksumError``."""
    dest = cached_path(file, home)
    if dest.exists():
        return FetchResult(file, dest, "cached", recorded_md5(dest))
    ep = endpoints or Endpoints.from_env()
    if file.archive is not None:  # v1-v3: a member of a tarball (catalog/legacy.py)
        return _fetch_member(file, ep, home, progress)
    # The recorded size/MD5 describe the official bucket's bytes; another base (a mirror)
    # is checked against its own x-goog-hash first, the records only when it sends none.
    official = ep.metadata_base.rstrip("/") == DEFAULT_METADATA_BASE
    url = file.url if file.url and official else ep.metadata_url(file.relpath)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    problem: tuple[str, str, str] = ("", "", "")
    for attempt in (1, 2):
        expect = _download_resuming(url, part, file, progress, official)
        found, md5 = _verify(part, expect)
        if found is None:
            _place(part, dest, md5)
            return FetchResult(file, dest, "fetched", md5)
        problem = found
        part.unlink(missing_ok=True)
        log.warning("%s: %s (attempt %d of 2)", url, problem[0], attempt)
    raise ChecksumError(url, problem[1], problem[2])


def _fetch_member(
    file: OfficialFile, ep: Endpoints, home: Path | None, progress: ProgressFn | None
) -> FetchResult:
    from oiforge.catalog.legacy import fetch_member

    def extracted(member: str, done: int, total: int) -> None:
        if progress is not None:
            progress(FetchProgress(member, done, total))

    def archive(a: OfficialFile) -> Path:
        return fetch_file(a, ep, home, progress).path

    md5 = fetch_member(file, metadata_dir(home), archive, extracted)
    return FetchResult(file, cached_path(file, home), "fetched", md5)


def _place(part: Path, dest: Path, md5: str) -> None:
    write_text_atomic(dest.with_name(dest.name + ".md5"), md5 + "\n")
    part.replace(dest)
    fsync_dir(dest.parent)


def _verify(part: Path, expect: _Expect) -> tuple[tuple[str, str, str] | None, str]:
    size = part.stat().st_size
    if expect.size is not None and size != expect.size:
        return ("size differs", f"{expect.size} bytes", f"{size} bytes"), ""
    md5 = file_md5(part)
    if expect.md5_hex is not None and md5 != expect.md5_hex:
        return ("MD5 differs", f"md5 {expect.md5_hex}", f"md5 {md5}"), md5
    if expect.md5_hex is None:
        log.warning("%s: no known MD5 and none sent by the server; size check only", part.name)
    return None, md5


def _download_resuming(
    url: str, part: Path, file: OfficialFile, progress: ProgressFn | None, official: bool
) -> _Expect:
    """Download into ``part``, resuming after broken transfers; returns what to verify."""
    import http.client  # here: urllib/http/email cost ~40 ms to import, and only a fetch needs them

    expect = _Expect(file.size, file.md5_hex) if official else _Expect(None, None)
    for _ in range(MAX_RESUMES + 1):
        try:
            _download_once(url, part, expect, progress, file.relpath)
        except (http.client.HTTPException, ConnectionError, TimeoutError, _TransientError) as exc:
            log.info("%s: transfer broken (%s); resuming", url, exc)
            continue
        if expect.size is None or part.stat().st_size >= expect.size:
            break
        log.info("%s: short body; resuming", url)
    else:
        have = part.stat().st_size if part.exists() else 0
        raise FetchError(url, f"transfer kept breaking ({have} bytes kept; rerun to resume)")
    if expect.md5_hex is None and file.md5_hex is not None and expect.size == file.size:
        expect.md5_hex = file.md5_hex
    return expect


def _download_once(
    url: str, part: Path, expect: _Expect, progress: ProgressFn | None, relpath: str
) -> None:
    import urllib.error
    import urllib.request

    have = part.stat().st_size if part.exists() else 0
    if expect.size is not None and have >= expect.size:
        return
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=DEFAULT_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            return  # the part already holds the whole file; verification decides
        if exc.code >= 500 or exc.code == 429:
            time.sleep(_retry_after(exc.headers.get("Retry-After")))
            raise _TransientError(f"HTTP {exc.code}") from exc
        raise FetchError(url, f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise FetchError(url, str(exc.reason)) from exc
    with resp:
        resumed = resp.status == 206
        _learn_expectations(resp, expect, have if resumed else 0)
        _stream(resp, part, have if resumed else 0, expect.size, progress, relpath)


def _learn_expectations(resp: http.client.HTTPResponse, expect: _Expect, offset: int) -> None:
    total = _total_size(resp, offset)
    if expect.size is None and total is not None:
        expect.size = total
    if expect.md5_hex is None:
        expect.md5_hex = server_md5(resp.headers.get_all("x-goog-hash") or [])
        if expect.md5_hex is None and resp.status == 200:
            expect.md5_hex = md5_b64_to_hex(resp.headers.get("Content-MD5"))


def _total_size(resp: http.client.HTTPResponse, offset: int) -> int | None:
    crange = resp.headers.get("Content-Range", "")
    if "/" in crange and not crange.endswith("/*"):
        try:
            return int(crange.rsplit("/", 1)[1])
        except ValueError:
            return None
    length = resp.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _stream(
    resp: http.client.HTTPResponse,
    part: Path,
    offset: int,
    total: int | None,
    progress: ProgressFn | None,
    relpath: str,
) -> None:
    done = offset
    with part.open("ab" if offset else "wb") as fh:
        while chunk := resp.read(CHUNK_BYTES):
            fh.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(FetchProgress(relpath, done, total))
        fh.flush()
        os.fsync(fh.fileno())
