"""Fetch an image by http(s) URL with a size cap, a total deadline and an address policy.

Only ``http``/``https`` (also after redirects). By default addresses that are private,
loopback, link-local or reserved are refused, so a public service cannot be used to reach its
own network; ``allow_private=True`` lifts that (tests, trusted networks).
"""

from __future__ import annotations

import ipaddress
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPMessage
from typing import IO, Final
from urllib.parse import urlsplit

from oiforge.errtext import exception_text

DEFAULT_MAX_BYTES: Final = 20 * 1024 * 1024
DEFAULT_TIMEOUT_S: Final = 10.0
MAX_REDIRECTS: Final = 3
CHUNK: Final = 64 * 1024


class FetchRejected(ValueError):
    """A URL that was not fetched; ``code`` is a per-item status."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_s: float = DEFAULT_TIMEOUT_S
    allow_private: bool = False


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_global and not ip.is_multicast


def check_url(url: str, policy: FetchPolicy) -> None:
    """Refuse non-http(s) URLs and, unless allowed, hosts that resolve to private addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRejected("invalid_url", f"only http(s) URLs with a host are allowed: {url!r}")
    if policy.allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchRejected("url_unreachable", f"cannot resolve {parts.hostname!r}") from exc
    if not all(_is_public(str(info[4][0])) for info in infos):
        raise FetchRejected("url_forbidden", f"{parts.hostname!r} is not a public address")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        check_url(newurl, self.policy)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _read_capped(resp: IO[bytes], policy: FetchPolicy, url: str) -> bytes:
    deadline = time.monotonic() + policy.timeout_s
    chunks: list[bytes] = []
    total = 0
    while chunk := resp.read(CHUNK):
        total += len(chunk)
        if total > policy.max_bytes:
            raise FetchRejected("url_too_large", f"{url} is over {policy.max_bytes} bytes")
        if time.monotonic() > deadline:
            raise FetchRejected("url_timeout", f"{url} took over {policy.timeout_s} s")
        chunks.append(chunk)
    return b"".join(chunks)


def fetch_url(url: str, policy: FetchPolicy) -> bytes:
    """The body of ``url`` (status 200 only), or ``FetchRejected`` with a status code."""
    check_url(url, policy)
    opener = urllib.request.build_opener(_CheckedRedirects(policy))
    request = urllib.request.Request(url, headers={"User-Agent": "oiforge-serve"})
    try:
        with opener.open(request, timeout=policy.timeout_s) as resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > policy.max_bytes:
                raise FetchRejected(
                    "url_too_large", f"{url} is {length} bytes (limit {policy.max_bytes})"
                )
            return _read_capped(resp, policy, url)
    except urllib.error.HTTPError as exc:
        raise FetchRejected("url_http_error", f"{url} answered HTTP {exc.code}") from exc
    except TimeoutError as exc:
        raise FetchRejected("url_timeout", f"{url} took over {policy.timeout_s} s") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if isinstance(exc, FetchRejected):
            raise
        why = exception_text(exc)
        raise FetchRejected("url_unreachable", f"cannot fetch {url}: {why}") from exc
