"""A tiny real HTTP client for the mirror tests (aiohttp, one request per call)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
from multidict import CIMultiDict


@dataclass
class Reply:
    status: int
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    body: bytes = b""
    error: str = ""
    history: list[int] = field(default_factory=list)
    final_path: str = ""


async def _fetch(url: str, method: str, headers: dict[str, str] | None, redirects: bool) -> Reply:
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(method, url, headers=headers, allow_redirects=redirects) as resp,
    ):
        reply = Reply(resp.status, CIMultiDict(resp.headers), final_path=resp.url.path)
        reply.history = [r.status for r in resp.history]
        try:
            reply.body = await resp.read()
        except aiohttp.ClientPayloadError as exc:
            reply.error = str(exc)
        return reply


def fetch(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, redirects: bool = True
) -> Reply:
    return asyncio.run(_fetch(url, method, headers, redirects))


async def _many(urls: list[str]) -> list[bytes]:
    async with aiohttp.ClientSession() as session:

        async def one(url: str) -> bytes:
            async with session.get(url) as resp:
                assert resp.status == 200, url
                return await resp.read()

        return list(await asyncio.gather(*(one(u) for u in urls)))


def fetch_all(urls: list[str]) -> list[bytes]:
    return asyncio.run(_many(urls))
