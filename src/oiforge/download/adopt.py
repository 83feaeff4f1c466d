"""Images a killed run stored but never journaled: logged before their rename, adopted on resume.

The journal commits in batches (every ~50 ms), so a SIGKILL loses the rows of the last few
images already renamed into the store, and a plain rerun would fetch them again. So each run
appends an image's journal row to ``store/.tmp/<run>/written.jsonl`` just before its file is
renamed into place (one ``write`` call, no fsync: it only has to outlive a killed process).
The next run reads the logs of dead runs before it removes their temp folders and adopts each
logged image whose file is in the store with the logged size and sha256, unless the journal
already has a final row for it, and syncs the store before it journals them (a killed run's
last files may still be only in the page cache). A file is renamed into place only after it
was verified and written whole, so a file at its place is whole unless an OS crash came before
the store's sync; the hash check catches that.

Without a log line (an OS crash can lose one), a file that is byte for byte the Flickr original
(the selection's ``OriginalMD5``) is adopted as such. Any other unjournaled file is fetched
again: its source and orientation are unknown, and the build must know whether the downloader
turned the pixels (``rotated``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Final

from oiforge.atomic import sync_filesystem
from oiforge.contracts.journal import Journal, JournalRow, is_transient
from oiforge.contracts.selection import ImageTask
from oiforge.download.fetch_image import now_iso, source_url
from oiforge.download.store import WRITTEN_LOG, Store
from oiforge.download.verify import NotAnImage, sniff_image
from oiforge.endpoints import Endpoints

log = logging.getLogger(__name__)

_ADOPTED_NOTE: Final = "adopted: stored by an interrupted run"


def _logged_rows(run_dirs: Iterable[Path]) -> dict[str, JournalRow]:
    """The rows in dead runs' logs (a torn last line is skipped), the latest per image."""
    rows: dict[str, JournalRow] = {}
    for folder in run_dirs:
        try:
            lines = (folder / WRITTEN_LOG).read_bytes().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                row = JournalRow(**json.loads(line))
            except (ValueError, TypeError):
                continue
            rows[row.image_id] = row
    return rows


def _file_digests(path: Path) -> tuple[bytes, str] | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data, hashlib.sha256(data).hexdigest()


def _is_open(status: str | None) -> bool:
    """No final journal row: never journaled, or a transient failure."""
    return status is None or is_transient(status)


def _from_log(
    store: Store, logged: dict[str, JournalRow], statuses: dict[str, str]
) -> list[JournalRow]:
    adopted = []
    for image_id, row in logged.items():
        if not _is_open(statuses.get(image_id)):
            continue
        found = _file_digests(store.image_path(image_id))
        if found is None or len(found[0]) != row.bytes or found[1] != row.sha256:
            continue
        adopted.append(replace(row, status="ok", attempts=0, error=None, finished_at=now_iso()))
    return adopted


def _original_row(
    task: ImageTask, data: bytes, sha: str, endpoints: Endpoints
) -> JournalRow | None:
    """A row for a file that is exactly the Flickr original, else None."""
    digest = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
    if digest != task.original_md5:
        return None
    try:
        info = sniff_image(data)
    except NotAnImage:
        return None
    url = source_url(task, "original", endpoints)
    return JournalRow(task.image_id, "ok", "original", url, len(data), sha, info.width,
                      info.height, error=None, finished_at=now_iso())  # fmt: skip


def _from_originals(
    store: Store, tasks: Iterable[ImageTask], statuses: dict[str, str], endpoints: Endpoints
) -> list[JournalRow]:
    adopted = []
    for task in tasks:
        if not task.original_md5 or not _is_open(statuses.get(task.image_id)):
            continue
        path = store.image_path(task.image_id)
        found = _file_digests(path) if path.is_file() else None
        row = _original_row(task, *found, endpoints) if found is not None else None
        if row is not None:
            adopted.append(row)
    return adopted


def adopt_leftovers(
    store: Store, tasks: tuple[ImageTask, ...], endpoints: Endpoints
) -> list[JournalRow]:
    """Journal the images dead runs stored but did not journal (see the module docstring);
    call before ``store.open_run()`` removes their temp folders. Returns the adopted rows."""
    stale = store.stale_runs()
    if not stale:
        return []
    with Journal(store.root) as journal:
        statuses = journal.statuses()
        adopted = _from_log(store, _logged_rows(stale), statuses)
        statuses.update((r.image_id, r.status) for r in adopted)
        adopted += _from_originals(store, tasks, statuses, endpoints)
        if adopted:  # renamed into place but maybe never synced: durable before journaled
            sync_filesystem(store.root)
        journal.append(adopted)
    if adopted:
        log.info("%d images %s", len(adopted), _ADOPTED_NOTE)
    return adopted
