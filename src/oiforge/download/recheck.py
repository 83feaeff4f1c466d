"""``download --verify``: re-check every ``ok`` image of a store; mark the bad ones for a rerun.

Each stored file is read once and checked against what is known of it:

- the journal: the file is there, with the journal's size and sha256 (bit rot, a file changed
  or replaced by hand, a store copied badly);
- with the selection: a file the journal says is the Flickr original and that has the original's
  size must have its ``OriginalMD5``;
- with ``remote``: the server's own MD5 (``HEAD``: ``Content-MD5``, ``x-goog-hash``, or the
  resized bucket's S3 ETag) of each resized copy stored as fetched (same size as the object).
  This catches bodies damaged on the way and stored by a version that did not check the ETag:
  their journal hash is the hash of the damaged bytes.

A file that fails is removed from the store and its journal row becomes ``error`` (with the
reason), a transient status: the next plain ``oiforge download`` fetches it again. A check that
cannot be made (no selection row, a re-encoded file, a server that does not answer) is counted
as unchecked, never as bad.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from oiforge.contracts.journal import Journal, JournalRow, read_journal, store_image_path
from oiforge.contracts.selection import ImageTask, read_selected_images
from oiforge.download.config import DownloadConfig
from oiforge.download.fetch_image import now_iso
from oiforge.download.http import Fetcher, create_session
from oiforge.headers import header_md5

log = logging.getLogger(__name__)

_READ_THREADS: Final = 4
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class StoreCheck:
    """What ``verify_store`` found: ``bad`` maps a reason to the images marked for refetch."""

    checked: int
    #: kind (``missing``, ``sha256``, ``original_md5``, ``server_md5``) → images marked
    bad: dict[str, list[str]] = field(default_factory=dict)
    #: a source check that could not be made (no MD5 known, a re-encoded file), per kind
    unchecked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.bad

    @property
    def marked(self) -> int:
        return sum(len(v) for v in self.bad.values())


@dataclass(frozen=True)
class _Stored:
    """An ``ok`` journal row and what its file holds now."""

    row: dict[str, Any]
    size: int | None  # None: the file is missing or unreadable
    sha256: str = ""
    md5_b64: str = ""


def _read(row: dict[str, Any], store: Path) -> _Stored:
    try:
        data = store_image_path(store, row["image_id"]).read_bytes()
    except (OSError, ValueError):
        return _Stored(row, None)
    md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
    return _Stored(row, len(data), hashlib.sha256(data).hexdigest(), md5)


Problem = tuple[str, str]  # (kind, the reason written into the journal)
_UNCHECKED: Final[Problem] = ("unchecked", "")


def _journal_problem(item: _Stored) -> Problem | None:
    if item.size is None:
        return "missing", "the file is missing from the store"
    if item.size != item.row["bytes"] or item.sha256 != item.row["sha256"]:
        return "sha256", "the file changed since download (sha256 differs from the journal)"
    return None


def _original_problem(item: _Stored, task: ImageTask | None) -> Problem | None:
    """A mismatch with ``OriginalMD5``; None when it matches; ``_UNCHECKED`` when there is
    nothing to compare with."""
    if item.row["source"] != "original" or task is None or not task.original_md5:
        return _UNCHECKED
    if item.size != task.original_size:
        return _UNCHECKED  # re-encoded on download (``--max-side``, a PNG turned JPEG)
    if item.md5_b64 == task.original_md5:
        return None
    return "original_md5", f"MD5 {item.md5_b64} differs from OriginalMD5 {task.original_md5}"


async def _ask_servers(items: list[_Stored], config: DownloadConfig) -> dict[str, Problem | None]:
    """image id → the MD5 problem of a resized copy per its server (None: it matches); absent
    when the server vouched for no MD5 or the file is not the object as served."""
    found: dict[str, Problem | None] = {}
    semaphore = asyncio.Semaphore(config.connections)
    async with create_session(config) as session:
        fetcher = Fetcher(session, config)

        async def one(item: _Stored) -> None:
            async with semaphore:
                answer = await fetcher.fetch(item.row["url"], head=True)
            vouched = header_md5(answer.headers, etag=True) if answer.body is not None else None
            length = answer.headers.get("content-length", "")
            if vouched is None or not length.isdigit() or int(length) != item.size:
                return
            why = f"MD5 {item.md5_b64} differs from the server's {vouched[1]} {vouched[0]}"
            found[item.row["image_id"]] = (
                None if vouched[0] == item.md5_b64 else ("server_md5", why)
            )

        await asyncio.gather(*(one(i) for i in items))
    return found


def _mark(store: Path, bad: dict[str, Problem]) -> None:
    """Remove the bad files; their journal rows become ``error`` (a rerun fetches them)."""
    rows = []
    for image_id, (_, reason) in sorted(bad.items()):
        store_image_path(store, image_id).unlink(missing_ok=True)
        rows.append(JournalRow(image_id, "error", error=f"download --verify: {reason}",
                               finished_at=now_iso()))  # fmt: skip
    with Journal(store) as journal:
        journal.append(rows)


def _local_checks(
    items: Iterable[_Stored], tasks: dict[str, ImageTask] | None
) -> tuple[dict[str, Problem], Counter[str]]:
    bad: dict[str, Problem] = {}
    unchecked: Counter[str] = Counter()
    for item in items:
        problem = _journal_problem(item)
        if problem is None and tasks is not None:
            problem = _original_problem(item, tasks.get(item.row["image_id"]))
            if problem == _UNCHECKED:
                unchecked["original_md5"] += item.row["source"] == "original"
                problem = None
        if problem:
            bad[item.row["image_id"]] = problem
    return bad, unchecked


def _read_all(rows: list[dict[str, Any]], root: Path, progress: Progress | None) -> list[_Stored]:
    """Every row's file read and hashed, on a few threads (hashing releases the GIL)."""
    items = []
    with ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="oiforge-verify") as pool:
        for n, item in enumerate(pool.map(lambda r: _read(r, root), rows), 1):
            items.append(item)
            if progress is not None and (n % 256 == 0 or n == len(rows)):
                progress(n, len(rows))
    return items


def verify_store(
    store: str | Path,
    selection: str | Path | pa.Table | None = None,
    *,
    remote: bool = False,
    config: DownloadConfig | None = None,
    progress: Progress | None = None,
) -> StoreCheck:
    """Re-check every ``ok`` image of ``store`` (see the module docstring); mark bad ones."""
    root = Path(store)
    rows = [r for r in read_journal(root).to_pylist() if r["status"] == "ok"]
    tasks = None
    if selection is not None:
        tasks = {t.image_id: t for t in read_selected_images(selection).tasks}
    items = _read_all(rows, root, progress)
    bad, unchecked = _local_checks(items, tasks)
    if remote:
        resized = [
            i for i in items if i.row["source"] == "resized" and i.row["image_id"] not in bad
        ]
        answers = asyncio.run(_ask_servers(resized, config or DownloadConfig()))
        bad.update({k: v for k, v in answers.items() if v})
        unchecked["server_md5"] += len(resized) - len(answers)
    if bad:
        _mark(root, bad)
        log.warning("download --verify: %d bad files removed and marked for refetch", len(bad))
    by_kind: dict[str, list[str]] = {}
    for image_id, (kind, _) in sorted(bad.items()):
        by_kind.setdefault(kind, []).append(image_id)
    return StoreCheck(len(rows), by_kind, {k: v for k, v in unchecked.items() if v})
