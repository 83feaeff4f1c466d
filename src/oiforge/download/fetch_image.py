"""One image, start to finish: each configured source's URL in fallback order, fetch, verify,
encode if asked, store; the journal row says how it ended.

A body that disagrees with the MD5 its own server vouches for (``Content-MD5``,
``x-goog-hash``, the resized bucket's S3 ETag) was damaged on the way: that URL is fetched
again (up to ``retries`` times) before it counts as ``bad_md5`` and the next source is tried.
A body that disagrees with the selection's ``OriginalMD5`` is not retried: the photo changed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from oiforge.contracts.journal import JournalRow, is_transient
from oiforge.contracts.selection import ImageTask
from oiforge.download.config import DownloadConfig, Source
from oiforge.download.encode import Encoded, ImageJob, encode_image
from oiforge.download.http import Fetched, Fetcher
from oiforge.download.store import Store, Writer, WrittenLog, sha256_hex
from oiforge.download.verify import ImageInfo, Rejection, check_body, is_placeholder_url
from oiforge.endpoints import Endpoints
from oiforge.headers import header_md5

log = logging.getLogger(__name__)
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
_DAMAGED = "bad_md5"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Pools:
    """Thread pool for file writes; a process pool (made on first use) for pixel work."""

    threads: Executor
    processes: Callable[[], Executor]


@dataclass(frozen=True)
class _Stored:
    data_len: int
    sha256: str
    width: int
    height: int
    rotated: int


class ImageFetcher:
    """Turns an :class:`ImageTask` into a :class:`JournalRow`, trying sources in order."""

    def __init__(
        self,
        fetcher: Fetcher,
        config: DownloadConfig,
        endpoints: Endpoints,
        store: Store,
        writer: Writer,
        pools: Pools,
        written: WrittenLog | None = None,
    ) -> None:
        self._fetcher, self._config, self._endpoints = fetcher, config, endpoints
        self._store, self._writer, self._pools = store, writer, pools
        self._written = written
        self.disk_error: str | None = None  # set when the store cannot take more files

    async def fetch(self, task: ImageTask) -> JournalRow:
        started, attempts, failures = now_iso(), 0, []
        for source, url in source_urls(task, self._config.sources, self._endpoints):
            result, tries = await self._fetch_source(task, source, url, started)
            attempts += tries
            if isinstance(result, _Stored):
                return JournalRow(
                    task.image_id,
                    "ok",
                    source,
                    url,
                    result.data_len,
                    result.sha256,
                    result.width,
                    result.height,
                    attempts,
                    None,
                    started,
                    now_iso(),
                    result.rotated,
                )
            failures.append((source, url, result))
            if self.disk_error:  # no use trying other sources: nowhere to put the bytes
                break
        return _failure_row(task.image_id, failures, attempts, started)

    async def _fetch_source(
        self, task: ImageTask, source: Source, url: str, started: str
    ) -> tuple[_Stored | Rejection, int]:
        """One source's URL, fetched again while its body disagrees with its server's MD5."""
        attempts, tries = 0, 0
        while True:
            fetched = await self._fetcher.fetch(url)
            attempts += fetched.attempts
            row = JournalRow(task.image_id, "ok", source, url, started_at=started)
            result = await self._accept(task, fetched, row)
            damaged = isinstance(result, Rejection) and result.status == _DAMAGED
            if not damaged or source == "original" or tries >= self._config.retries:
                return result, attempts
            tries += 1
            log.info("%s: body differs from its server's MD5; fetching it again", url)
            await self._fetcher.pause(tries)

    async def _accept(
        self, task: ImageTask, fetched: Fetched, row: JournalRow
    ) -> _Stored | Rejection:
        """Check and store one fetched body; ``row`` (image, source, URL) is what the written
        log records for it. Hashing and file work run on a write thread, off the event loop."""
        if is_placeholder_url(fetched.redirects[1:]):  # whatever the placeholder URL answers
            return Rejection("placeholder", f"redirected to {fetched.redirects[-1]}")
        if fetched.body is None:
            return Rejection(fetched.status, fetched.error or fetched.status)
        body, loop = fetched.body, asyncio.get_running_loop()
        threads = self._pools.threads
        checked = await loop.run_in_executor(threads, self._check_and_store, task, fetched, row)
        if not isinstance(checked, ImageInfo):
            return checked
        job = ImageJob(body, self._config.max_side, self._config.jpeg_quality, task.rotation)
        encoded = await self._encode(job)
        if isinstance(encoded, Rejection):
            return encoded
        data, width, height, rotated = _unpack(encoded)
        row = replace(row, width=width, height=height, rotated=rotated)
        return await loop.run_in_executor(threads, self._store_image, task, data, row)

    def _check_and_store(
        self, task: ImageTask, fetched: Fetched, row: JournalRow
    ) -> _Stored | Rejection | ImageInfo:
        """Verify the body and store it as served; an :class:`ImageInfo` back means it is
        to be re-encoded first (resized, or not a JPEG). Runs on a write thread."""
        checked = self._check(task, row.source or "", fetched)
        if isinstance(checked, Rejection):
            return checked
        if self._config.max_side is not None or checked.format != "jpeg":
            return checked
        assert fetched.body is not None
        row = replace(row, width=checked.width, height=checked.height)
        return self._store_image(task, fetched.body, row)

    def _check(self, task: ImageTask, source: str, fetched: Fetched) -> ImageInfo | Rejection:
        assert fetched.body is not None
        if source == "original":
            expected = (task.original_md5, "OriginalMD5") if task.original_md5 else None
        else:  # S3's ETag is an MD5 on the resized bucket; Flickr's CDN makes no such promise
            expected = header_md5(fetched.headers, etag=source == "resized")
        return check_body(
            fetched.body,
            expected_md5_b64=expected[0] if expected else None,
            expected_size=task.original_size if source == "original" else None,
            placeholder_sha256=self._config.placeholder_sha256,
            md5_from=expected[1] if expected else "expected",
        )

    def _store_image(self, task: ImageTask, data: bytes, row: JournalRow) -> _Stored | Rejection:
        """Hash, log (before the rename, so a killed run's stored images are known), store.
        Runs on a write thread."""
        path = self._store.image_path(task.image_id)
        digest = sha256_hex(data)
        row = replace(row, bytes=len(data), sha256=digest)
        try:
            if self._written is not None:
                self._written.record(replace(row, finished_at=now_iso()))
            self._writer.write(path, data)
        except OSError as exc:
            if exc.errno in _DISK_ERRNOS:
                self.disk_error = self.disk_error or f"{exc.strerror} ({exc.filename})"
            return Rejection("error", f"store write failed: {exc}")
        return _Stored(len(data), digest, row.width or 0, row.height or 0, row.rotated)

    async def _encode(self, job: ImageJob) -> Encoded | Rejection:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pools.processes(), encode_image, job)
        except BrokenProcessPool:
            # e.g. a caller's script without a ``__main__`` guard: spawn cannot start workers.
            log.warning("process pool unavailable; encoding images in threads")
            self._pools = Pools(self._pools.threads, lambda: self._pools.threads)
            return await loop.run_in_executor(self._pools.threads, encode_image, job)


def _unpack(encoded: Encoded) -> tuple[bytes, int, int, int]:
    return encoded.data, encoded.width, encoded.height, encoded.rotated


#: Permanent failures, most telling first: what the photo itself is beats a fallback's 404.
_RANK = ("placeholder", "bad_md5", "not_image", "too_large", "http_410")


def _rank(status: str) -> int:
    return _RANK.index(status) if status in _RANK else len(_RANK)


def _failure_row(
    image_id: str, failures: list[tuple[Source, str, Rejection]], attempts: int, started: str
) -> JournalRow:
    """The status of a failed image: a transient failure if any (so a rerun retries), else
    the most telling one; the error text lists every source tried."""
    if not failures:
        return JournalRow(image_id, "missing", error="no source URL for this image",
                          started_at=started, finished_at=now_iso())  # fmt: skip
    transient = [f for f in failures if is_transient(f[2].status)]
    source, url, rejection = (
        transient[0] if transient else min(failures, key=lambda f: _rank(f[2].status))
    )
    error = "; ".join(f"{s}: {r.error}" for s, _, r in failures)
    return JournalRow(image_id, rejection.status, source, url, attempts=attempts,
                      error=error[:2000], started_at=started, finished_at=now_iso())  # fmt: skip


def source_urls(
    task: ImageTask, sources: tuple[Source, ...], endpoints: Endpoints
) -> Iterator[tuple[Source, str]]:
    """``(source, url)`` for every configured source this image has, in order."""
    for source in sources:
        url = source_url(task, source, endpoints)
        if url is not None:
            yield source, url


def source_url(task: ImageTask, source: Source, endpoints: Endpoints) -> str | None:
    """The URL of one source, or None when the metadata has no usable one."""
    if source == "resized":
        return endpoints.resized_image_url(task.split, task.image_id) if task.split else None
    raw = task.original_url if source == "original" else task.thumbnail_url
    if raw is None or not _is_web_url(raw):
        return None
    return endpoints.flickr_url(raw)


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in url
