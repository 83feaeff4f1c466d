"""The image store: ``store/<id[:2]>/<id>.jpg``, written via temp file and rename.

Temp files live in ``store/.tmp/<pid>-<token>/`` so a killed run leaves no partial file
beside the images; the next run removes temp folders whose process is gone (after adopting
what their :class:`WrittenLog` lists, see ``adopt``). Files are not fsynced one by one: the
run makes a batch durable with one ``sync_filesystem`` of the store before it journals the
batch as ``ok`` (group commit, see ``runner``), so the journal never claims a file an OS crash
could lose. The :class:`Writer` protocol is the seam for other back ends (and for tests of a
full disk).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import threading
from pathlib import Path
from typing import Final, Protocol

from oiforge.contracts.journal import JournalRow, store_image_path
from oiforge.errors import InvalidInputError

TMP_DIR = ".tmp"
#: Free space kept for the journal: a write that would leave less is refused as ENOSPC, so
#: the run can still record every image's status when the disk fills up.
RESERVE_BYTES = 64 * 1024 * 1024
RESERVE_SHARE = 0.1
RECHECK_BYTES = 32 * 1024 * 1024  # written between two looks at the free space, at most


WRITTEN_LOG: Final = "written.jsonl"


class WrittenLog:
    """This run's ``written.jsonl``: the journal row of each image about to be renamed into the
    store, one JSON line each, appended from any thread (read by the next run if this one is
    killed before it journals them: ``adopt``)."""

    def __init__(self, run_dir: Path) -> None:
        self._fd = os.open(run_dir / WRITTEN_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def record(self, row: JournalRow) -> None:
        """One line, one ``write`` (appends of a line are atomic: no lock between threads)."""
        # vars, not dataclasses.asdict: no deep copy of the row's plain values
        line = (json.dumps(vars(row), separators=(",", ":")) + "\n").encode()
        os.write(self._fd, line)  # EBADF once closed

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class Writer(Protocol):
    """Puts bytes at a store path atomically (a reader sees the whole file or none), on the
    store's file system (the run syncs that before it journals the file); raises ``OSError``
    when it cannot."""

    def write(self, path: Path, data: bytes) -> None: ...


class FileWriter:
    """Temp file in the run's temp folder, renamed into place; durable at the run's next
    ``sync_filesystem`` of the store (before the journal says ``ok``)."""

    def __init__(self, tmp_dir: Path) -> None:
        self._tmp_dir = tmp_dir
        self._folders: set[Path] = set()  # store folders known to exist (one mkdir each)
        self._room = _Room(tmp_dir)
        self._serial = itertools.count()  # temp names: the folder is this run's alone

    def write(self, path: Path, data: bytes) -> None:
        self._room.take(len(data))
        tmp = self._tmp_dir / f"{path.name}.{next(self._serial)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            if path.parent not in self._folders:
                path.parent.mkdir(exist_ok=True)
                self._folders.add(path.parent)
            tmp.replace(path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise


class _Room:
    """Free space above the journal's reserve. The file system is asked (``statvfs``) again
    only once half of what it last had free (at most ``RECHECK_BYTES``) was written: others
    may write to the same disk, so never the whole of it on one look."""

    def __init__(self, folder: Path) -> None:
        self._folder, self._left, self._lock = folder, 0, threading.Lock()

    def take(self, size: int) -> None:
        """Count ``size`` bytes as written; ``OSError(ENOSPC)`` when they would not fit."""
        with self._lock:
            if size > self._left:
                self._left = _headroom(self._folder, size)
            self._left -= size


def _headroom(folder: Path, size: int) -> int:
    st = os.statvfs(folder)
    reserve = min(RESERVE_BYTES, int(st.f_blocks * st.f_frsize * RESERVE_SHARE))
    free = st.f_bavail * st.f_frsize - reserve
    if free - size < 0:
        raise OSError(errno.ENOSPC, "No space left on device (keeping room for the journal)",
                      str(folder))  # fmt: skip
    return max(size, min(free // 2, RECHECK_BYTES))


#: ``s3://b/x`` as given, or as ``Path`` leaves it (``s3:/b/x``); one-letter schemes are drives.
_URL: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def check_local_folder(path: str | Path, what: str) -> Path:
    """``path`` as a folder path; an object-store URL is refused with the way that works."""
    if _URL.match(str(path)):
        raise InvalidInputError(
            f"{what} must be a folder (local or a shared mount), not a URL: {path}. Download and "
            "build into a folder, then upload the dataset with `oiforge publish DATASET s3://...`"
        )
    return Path(path)


class Store:
    """A store folder. ``open_run`` makes this process's temp folder and removes stale ones."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def image_path(self, image_id: str) -> Path:
        return store_image_path(self.root, image_id)

    def has_image(self, image_id: str) -> bool:
        return self.image_path(image_id).is_file()

    def stale_runs(self) -> list[Path]:
        """Temp folders of runs whose process is gone (killed, or the machine restarted)."""
        base = self.root / TMP_DIR
        try:
            return sorted(p for p in base.iterdir() if not _is_live(p.name))
        except OSError:
            return []

    def open_run(self) -> Path:
        """This run's temp folder (created), after clearing those of dead processes."""
        base = self.root / TMP_DIR
        base.mkdir(parents=True, exist_ok=True)
        for stale in self.stale_runs():
            shutil.rmtree(stale, ignore_errors=True)
        run_dir = base / f"{os.getpid()}-{secrets.token_hex(4)}"
        run_dir.mkdir()
        return run_dir

    def close_run(self, run_dir: Path) -> None:
        shutil.rmtree(run_dir, ignore_errors=True)


def _is_live(name: str) -> bool:
    """True when the temp folder's owning process still runs on this machine."""
    pid_text = name.split("-", 1)[0]
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
