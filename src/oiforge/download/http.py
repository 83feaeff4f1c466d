"""One URL in, one :class:`Fetched` out: bounded connections, timeouts, retries, rate limits.

Retries (exponential backoff with full jitter, honouring ``Retry-After``) on 5xx, 429,
timeouts and connection errors; never on other 4xx. Bodies are read with a size cap.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from oiforge.download.config import DownloadConfig
from oiforge.headers import retry_after_s

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetched:
    """The result of fetching one URL: a body, or a failure status and reason."""

    url: str
    attempts: int
    body: bytes | None = None
    status: str = "ok"  # or http_<code>, timeout, too_large, error
    error: str | None = None
    redirects: tuple[str, ...] = ()  # every URL visited, final one last
    headers: dict[str, str] = field(default_factory=dict)


class _Retry(Exception):
    """A failure worth another try."""

    def __init__(self, status: str, error: str, wait_s: float | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.wait_s = status, error, wait_s


class RateLimiter:
    """At most ``rate`` request starts per second for each host (None: no limit)."""

    def __init__(self, rate: float | None) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._next: dict[str, float] = {}

    async def wait(self, host: str) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        start = max(now, self._next.get(host, now))
        self._next[host] = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)


def create_session(config: DownloadConfig) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=config.connections, limit_per_host=config.per_host, ttl_dns_cache=300
    )
    timeout = aiohttp.ClientTimeout(
        total=config.total_timeout_s,
        connect=config.connect_timeout_s,
        sock_read=config.read_timeout_s,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers={"User-Agent": config.user_agent},
        auto_decompress=False,
        trust_env=False,
    )


class Fetcher:
    """Fetches URLs with one shared session, retry policy and per-host rate limit."""

    def __init__(self, session: aiohttp.ClientSession, config: DownloadConfig) -> None:
        self._session = session
        self._config = config
        self._limiter = RateLimiter(config.rate_per_host)

    async def fetch(self, url: str, *, head: bool = False) -> Fetched:
        """GET ``url`` with retries (``head``: HEAD, headers only, ``body`` empty); failures
        come back as values."""
        attempts = 0
        while True:
            attempts += 1
            try:
                return await self._once(url, attempts, head)
            except _Retry as retry:
                if attempts > self._config.retries:
                    return Fetched(url, attempts, status=retry.status, error=retry.error)
                await asyncio.sleep(self._backoff(attempts, retry.wait_s))

    async def pause(self, attempt: int) -> None:
        """Wait as before the ``attempt``-th retry (for a caller retrying a whole fetch)."""
        await asyncio.sleep(self._backoff(attempt, None))

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cap = self._config.backoff_max_s
        if retry_after is not None:
            return min(retry_after, cap)
        return random.uniform(0, min(cap, self._config.backoff_s * 2 ** (attempt - 1)))

    async def _once(self, url: str, attempts: int, head: bool) -> Fetched:
        await self._limiter.wait(urlsplit(url).netloc)
        method = "HEAD" if head else "GET"
        try:
            async with self._session.request(
                method, url, allow_redirects=True, max_redirects=10
            ) as resp:
                return await self._read(resp, url, attempts, head)
        except TimeoutError as exc:
            raise _Retry("timeout", f"timed out ({exc or 'no response in time'})") from exc
        except aiohttp.TooManyRedirects:
            return Fetched(url, attempts, status="error", error="too many redirects")
        except (aiohttp.InvalidURL, ValueError) as exc:
            return Fetched(url, attempts, status="error", error=f"invalid URL: {exc}")
        except aiohttp.ClientPayloadError as exc:
            raise _Retry("error", f"truncated body: {exc}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise _Retry("error", f"{type(exc).__name__}: {exc}") from exc

    async def _read(
        self, resp: aiohttp.ClientResponse, url: str, attempts: int, head: bool
    ) -> Fetched:
        chain = (*(str(r.url) for r in resp.history), str(resp.url))
        headers = _lowercase(resp.headers)
        if resp.status >= 500 or resp.status == 429:
            wait = retry_after_s(headers.get("retry-after"))
            raise _Retry(f"http_{resp.status}", f"HTTP {resp.status} {resp.reason}", wait)
        if resp.status != 200:
            err = f"HTTP {resp.status} {resp.reason}"
            return Fetched(url, attempts, status=f"http_{resp.status}", error=err, redirects=chain)
        if head:
            return Fetched(url, attempts, body=b"", redirects=chain, headers=headers)
        limit = self._config.max_bytes
        if resp.content_length is not None and resp.content_length > limit:
            return _too_large(url, attempts, chain, f"Content-Length {resp.content_length}")
        body = await _read_capped(resp, limit)
        if body is None:
            return _too_large(url, attempts, chain, "body")
        if resp.content_length is not None and len(body) != resp.content_length:
            raise _Retry("error", f"truncated body: {len(body)} of {resp.content_length} bytes")
        return Fetched(url, attempts, body=body, redirects=chain, headers=headers)


def _too_large(url: str, attempts: int, chain: tuple[str, ...], what: str) -> Fetched:
    return Fetched(
        url, attempts, status="too_large", error=f"{what} over --max-bytes", redirects=chain
    )


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` bytes."""
    if resp.content_length is not None:
        return await resp.read()
    parts, total = [], 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        total += len(chunk)
        if total > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def _lowercase(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers by lower-case name; a repeated one (GCS sends ``x-goog-hash`` twice, crc32c
    and md5) keeps every value, comma-joined as HTTP allows."""
    out: dict[str, str] = {}
    for key, value in headers.items():
        name = key.lower()
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out
