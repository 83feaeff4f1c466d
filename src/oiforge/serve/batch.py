"""Predict many images (files, folders, globs, URLs) in batches; failures are values.

``expand_sources`` turns command-line arguments into a list of sources;
``predict_sources`` yields one ``ItemResult`` per source, in order, with ``status`` ``ok`` or
the reason it failed (``not_found``, ``invalid_image``, ``image_too_large``, ``url_*``).
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from oiforge.errors import InvalidInputError
from oiforge.errtext import exception_text
from oiforge.serve.images import (
    DEFAULT_MAX_PIXELS,
    FetchPolicy,
    FetchRejected,
    ImageRejected,
    fetch_url,
    preprocess_bytes,
)
from oiforge.serve.predictor import Predictor, Score

IMAGE_SUFFIXES: Final = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
)
DEFAULT_BATCH: Final = 16


@dataclass(frozen=True)
class ItemResult:
    source: str
    status: str
    scores: list[Score] = field(default_factory=list)
    error: str = ""
    width: int = 0
    height: int = 0
    labels: list[Score] | None = None  # multi-label: the classes at or above their thresholds


def _is_url(arg: str) -> bool:
    return arg.lower().startswith(("http://", "https://"))


def _folder_images(folder: Path) -> list[str]:
    files = (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return sorted(str(p) for p in files)


def expand_sources(args: Sequence[str]) -> list[str]:
    """Files, folders (recursively, image suffixes only), globs and http(s) URLs, in order."""
    sources: list[str] = []
    for arg in args:
        path = Path(arg)
        if _is_url(arg):
            sources.append(arg)
        elif path.is_dir():
            sources.extend(_folder_images(path))
        elif path.exists() or not glob.has_magic(arg):
            sources.append(arg)  # a missing file becomes a per-item `not_found`
        else:
            matches = sorted(glob.glob(arg, recursive=True))  # noqa: PTH207 (absolute patterns)
            if not matches:
                raise InvalidInputError(f"no file matches {arg!r}")
            sources.extend(m for m in matches if Path(m).is_file())
    return sources


def read_source(source: str, policy: FetchPolicy) -> bytes:
    if _is_url(source):
        return fetch_url(source, policy)
    try:
        return Path(source).read_bytes()
    except FileNotFoundError as exc:
        raise FetchRejected("not_found", f"no such file: {source}") from exc
    except OSError as exc:
        raise FetchRejected("unreadable", f"cannot read {source}: {exception_text(exc)}") from exc


@dataclass(frozen=True)
class _Prepared:
    source: str
    array: npt.NDArray[np.float32]
    width: int
    height: int


def _prepare(
    source: str, predictor: Predictor, policy: FetchPolicy, max_pixels: int
) -> _Prepared | ItemResult:
    try:
        arr, decoded = preprocess_bytes(
            read_source(source, policy), predictor.labels.preprocessing, max_pixels
        )
    except (FetchRejected, ImageRejected) as exc:
        return ItemResult(source, exc.code, error=str(exc))
    return _Prepared(source, arr, decoded.width, decoded.height)


def _run_batch(
    predictor: Predictor, items: list[_Prepared | ItemResult], top_k: int
) -> Iterator[ItemResult]:
    ready = [item for item in items if isinstance(item, _Prepared)]
    probs = predictor.probabilities([r.array for r in ready]) if ready else None
    ranked = iter(predictor.top_k(probs, top_k)) if probs is not None else iter([])
    above = iter((predictor.above_thresholds(probs) if probs is not None else None) or [])
    for item in items:
        if isinstance(item, ItemResult):
            yield item
        else:
            scores, labels = next(ranked), next(above, None)
            yield ItemResult(item.source, "ok", scores, "", item.width, item.height, labels)


def predict_sources(
    predictor: Predictor,
    sources: Iterable[str],
    top_k: int = 5,
    batch_size: int = DEFAULT_BATCH,
    policy: FetchPolicy | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[ItemResult]:
    """One result per source, in order; the model sees ``batch_size`` images per call."""
    policy = policy or FetchPolicy(allow_private=True)  # the CLI user is the one asking
    pending: list[_Prepared | ItemResult] = []
    for source in sources:
        pending.append(_prepare(source, predictor, policy, max_pixels))
        if len(pending) >= batch_size:
            yield from _run_batch(predictor, pending, top_k)
            pending = []
    if pending:
        yield from _run_batch(predictor, pending, top_k)
