"""Where each image can come from, in the configured fallback order."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from oiforge.contracts.selection import ImageTask
from oiforge.download.config import Source
from oiforge.endpoints import Endpoints


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
