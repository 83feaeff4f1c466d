"""The exclude-list file that ``build`` and ``book`` honour, edited safely from the browser.

Every change re-reads the file, applies one edit and rewrites it atomically, under a thread lock
and an ``fcntl`` lock on a side file, so two tabs (or two processes) never lose an exclusion.
"""

from __future__ import annotations

import fcntl
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from oiforge.atomic import write_text_atomic
from oiforge.contracts import ExcludeList, is_image_id, read_exclude_list
from oiforge.errors import InvalidInputError

_HEADER = "# oiforge exclude list: ImageID[,box],reason (written by oiforge browse)\n"


def clean_reason(reason: str) -> str:
    """The reason as the exclude-list reader will read it back (one line, no ``#``, no
    separator spacing, never a bare number that would read as a box index)."""
    text = " ".join(reason.replace("#", " ").split())[:200]
    text = re.sub(r"\s*,\s*", ",", text).strip(", ")
    if text.lstrip("-").split(",", 1)[0].isdigit():
        text = f"reason {text}"
    return text or "excluded in browse"


class ExcludeStore:
    """Read, add and remove exclusions of one exclude-list file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.with_name(self.path.name + ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def read(self) -> ExcludeList:
        return read_exclude_list(self.path if self.path.exists() else None)

    def exclude(self, image_id: str, box: int | None, reason: str) -> ExcludeList:
        _check(image_id, box)
        with self._locked():
            ex = self.read()
            if box is None:
                ex.images[image_id] = clean_reason(reason)
            else:
                ex.boxes[(image_id, box)] = clean_reason(reason)
            self._write(ex)
            return ex

    def undo(self, image_id: str, box: int | None) -> ExcludeList:
        _check(image_id, box)
        with self._locked():
            ex = self.read()
            if box is None:
                ex.images.pop(image_id, None)
            else:
                ex.boxes.pop((image_id, box), None)
            self._write(ex)
            return ex

    def _write(self, ex: ExcludeList) -> None:
        lines = [f"{i},{r}" if b is None else f"{i},{b},{r}" for i, b, r in ex.entries()]
        write_text_atomic(self.path, _HEADER + "".join(f"{line}\n" for line in lines))


def _check(image_id: str, box: int | None) -> None:
    if not is_image_id(image_id):
        raise InvalidInputError(f"{image_id!r} is not an ImageID (16 hex chars)")
    if box is not None and box < 0:
        raise InvalidInputError("box index must be >= 0")
