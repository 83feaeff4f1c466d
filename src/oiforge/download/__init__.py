"""The download stage: selection.parquet in, ``store/`` + ``store/journal.sqlite`` out.

    from oiforge.download import DownloadConfig, download, read_journal
    summary = download("selection.parquet", "store", DownloadConfig(max_side=512), endpoints)
    table = read_journal("store")        # one row per image: status, source, sha256, ...

Each image is fetched once, from the first configured source that yields a verified image
(resized bucket copy, then the Flickr original, then the thumbnail). Failures are journal
rows (``http_404``, ``placeholder``, ``bad_md5``, ``not_image``, ``too_large``, ``timeout``,
``error``, ``missing``), never exceptions. A rerun resumes: ``ok`` images are skipped without
a request, transient failures are tried again, permanent ones only with ``retry_failed``;
images a killed run stored but had not journaled are adopted after a hash check.
``verify_store("store", selection, remote=True)`` re-checks a store and marks bad files.
"""

from __future__ import annotations

from oiforge.contracts.journal import (
    JOURNAL_SCHEMA,
    JournalRow,
    is_transient,
    read_journal,
    status_counts,
)
from oiforge.download.config import SOURCES, DownloadConfig
from oiforge.download.recheck import StoreCheck, verify_store
from oiforge.download.runner import DownloadSummary, ProgressUpdate, download
from oiforge.download.store import FileWriter, Writer, check_local_folder

__all__ = [
    "JOURNAL_SCHEMA",
    "SOURCES",
    "DownloadConfig",
    "DownloadSummary",
    "FileWriter",
    "JournalRow",
    "ProgressUpdate",
    "StoreCheck",
    "Writer",
    "check_local_folder",
    "download",
    "is_transient",
    "read_journal",
    "status_counts",
    "verify_store",
]
