"""The working folder's memory: what each stage last ran with, and what it made.

``<workdir>/oiforge-run.json`` holds, per stage, the settings and input digests it last ran
with and the digests of what it wrote; a stage reruns only when one of them changed (the way
DVC decides, not make). Digests are of content, not timestamps: a file rewritten with the same
bytes (a ``select`` rerun that selects the same rows) changes nothing downstream, and a copied
or ``touch``-ed folder reruns nothing. Reading is cheap anyway: a file's sha256 is cached by
(size, mtime, inode) in the state file, so unchanged files are never read twice. Every write
of the state file is atomic; a lock file keeps a second ``oiforge run`` out of the same
folder.

What a digest covers:

- a file: its sha256;
- a store (a folder with ``journal.sqlite``): its journal rows (image, status, sha256), so a
  download that fetched nothing new leaves it unchanged;
- a dataset (a folder with ``oiforge.lock``): its lock, which holds every file's sha256;
- any other folder: every file's relative path and sha256.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow.csv as pacsv

from oiforge.atomic import write_text_atomic
from oiforge.contracts import read_journal
from oiforge.errors import InvalidInputError, MalformedFileError

STATE_FILE: Final = "oiforge-run.json"
LOCK_FILE: Final = ".oiforge-run.lock"
FORMAT: Final = 1
JOURNAL: Final = "journal.sqlite"
DATASET_LOCK: Final = "oiforge.lock"


@contextmanager
def hold_workdir(workdir: Path) -> Iterator[None]:
    """Create ``workdir`` and hold its lock for a run (a second run there is refused)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / LOCK_FILE).open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise InvalidInputError(f"another `oiforge run` is working in {workdir}") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class State:
    """The state file of one working folder (see the module docstring)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.path = workdir / STATE_FILE
        data = _read(self.path)
        self.stages: dict[str, dict[str, Any]] = data.get("stages", {})
        self._files: dict[str, list[Any]] = data.get("files", {})

    def record(self, stage: str, entry: Mapping[str, Any]) -> None:
        """Replace ``stage``'s entry and write the state file atomically."""
        self.stages[stage] = {**entry, "at": datetime.now(UTC).isoformat(timespec="seconds")}
        self.save()

    def save(self) -> None:
        data = {"format": FORMAT, "stages": self.stages, "files": self._files}
        write_text_atomic(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def digest(self, path: Path) -> str | None:
        """The digest of a file or folder (see the module docstring); ``None`` if missing."""
        if path.is_file():
            return self._file_sha256(path)
        if not path.is_dir():
            return None
        if (path / JOURNAL).is_file():
            return self._journal_digest(path)
        if (path / DATASET_LOCK).is_file():
            return self._file_sha256(path / DATASET_LOCK)
        return _combine(
            {p.relative_to(path).as_posix(): self._file_sha256(p) for p in _files_under(path)}
        )

    def _file_sha256(self, path: Path) -> str:
        key, stamp = str(path.resolve()), _stamp(path)
        cached = self._files.get(key)
        if cached is not None and cached[:-1] == stamp:
            return str(cached[-1])
        with path.open("rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        self._files[key] = [*stamp, digest]
        return digest

    def _journal_digest(self, store: Path) -> str:
        journal = store / JOURNAL
        stamp = [*_stamp(journal), *_stamp(journal.with_name(JOURNAL + "-wal"))]
        key = f"{journal.resolve()}#rows"
        cached = self._files.get(key)
        if cached is not None and cached[:-1] == stamp:
            return str(cached[-1])
        rows = read_journal(store).select(["image_id", "status", "sha256"])  # by image_id
        sink = io.BytesIO()
        pacsv.write_csv(rows, sink)
        digest = hashlib.sha256(sink.getvalue()).hexdigest()
        self._files[key] = [*stamp, digest]
        return digest


def _stamp(path: Path) -> list[int]:
    """(size, mtime ns, inode) of a file (an atomic rewrite is a new inode); zeros if absent."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return [0, 0, 0]
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedFileError(str(path), f"{exc} (delete it to run every stage again)") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise MalformedFileError(str(path), f"not an oiforge run state of format {FORMAT}")
    return data


def _files_under(folder: Path) -> list[Path]:
    found = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        found += [Path(root) / n for n in sorted(names)]
    return found


def _combine(parts: Mapping[str, str | None]) -> str:
    """One digest for named digests (order-independent)."""
    text = json.dumps(dict(parts), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
