"""The download journal as seen by browse: each selected image's status, error and size.

Read through the download stage's public reader, aligned to the index's image order, and read
again only when the journal changes (a download running beside browse shows up on refresh).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oiforge.arrays import to_numpy
from oiforge.browse.index import ImageIndex
from oiforge.errors import OiforgeError

NOT_DOWNLOADED: Final = "not downloaded"
Vector = np.ndarray[Any, Any]


@dataclass(frozen=True)
class DownloadState:
    """Per image (index order): status code into ``statuses``, error text, stored size."""

    statuses: list[str]
    status: Vector  # int16 codes
    error: list[str | None]
    width: Vector  # int32, 0 when unknown
    height: Vector

    def codes(self, wanted: str) -> Vector:
        """Status codes that ``wanted`` names: one status, or ``failed`` (any but ok)."""
        if wanted == "failed":
            return np.array(
                [i for i, s in enumerate(self.statuses) if s not in ("ok", NOT_DOWNLOADED)]
            )
        return np.array([i for i, s in enumerate(self.statuses) if s == wanted])


def _empty(n: int) -> DownloadState:
    zeros = np.zeros(n, np.int32)
    return DownloadState([NOT_DOWNLOADED], np.zeros(n, np.int16), [None] * n, zeros, zeros)


def _column(journal: pa.Table, name: str, where: pa.Array) -> pa.Array:
    return journal.column(name).combine_chunks().take(where)


def align(index: ImageIndex, journal: pa.Table) -> DownloadState:
    """The journal's rows for the index's images (absent ones are ``not downloaded``)."""
    n = len(index)
    if not journal.num_rows or not n:
        return _empty(n)
    ids = pa.array(index.ids, pa.string())
    where = pc.index_in(ids, value_set=journal.column("image_id").combine_chunks())
    status = pc.fill_null(_column(journal, "status", where), NOT_DOWNLOADED)
    encoded = pc.dictionary_encode(status)
    size = [
        to_numpy(pc.fill_null(_column(journal, c, where), 0)).astype(np.int32)
        for c in ("width", "height")
    ]
    return DownloadState(
        encoded.dictionary.to_pylist(),
        to_numpy(encoded.indices).astype(np.int16),
        _column(journal, "error", where).to_pylist(),
        size[0],
        size[1],
    )


class Downloads:
    """The journal of one store, re-read when its files change."""

    def __init__(self, store: Path, index: ImageIndex) -> None:
        self.store = store
        self.index = index
        self._lock = threading.Lock()
        self._state: tuple[tuple[int, ...], DownloadState] | None = None

    def _version(self) -> tuple[int, ...]:
        out: list[int] = []
        for name in ("journal.sqlite", "journal.sqlite-wal"):
            try:
                st = (self.store / name).stat()
                out += [st.st_size, st.st_mtime_ns]
            except FileNotFoundError:
                out += [0, 0]
        return tuple(out)

    def state(self) -> DownloadState:
        with self._lock:
            version = self._version()
            if self._state is None or self._state[0] != version:
                self._state = (version, align(self.index, _read(self.store)))
            return self._state[1]


def _read(store: Path) -> pa.Table:
    from oiforge.contracts import JOURNAL_SCHEMA, read_journal

    try:
        return read_journal(store)
    except OiforgeError:
        return JOURNAL_SCHEMA.empty_table()
