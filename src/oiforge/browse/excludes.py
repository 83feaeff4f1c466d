"""The files a curator writes from the browser: the exclude-list (``build`` and ``book`` honour
it) and the label review file (``select --review`` and ``build --review`` read it).

Every change re-reads the file, applies one edit (of one item or of many) and rewrites it
atomically (``oiforge.atomic``: temp file, fsync, rename), under a thread lock and an
``fcntl`` lock on a side file, so two tabs (or two processes) never lose an edit and a crash
of the server leaves the old file or the new one, never half of one. Reads are cached per
file version (inode, size, mtime), so a grid request does not parse the file again.
"""

from __future__ import annotations

import fcntl
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, TypeVar

from oiforge.atomic import write_text_atomic
from oiforge.contracts import ExcludeList, is_image_id, read_exclude_list
from oiforge.contracts.selection import is_mid
from oiforge.errors import InvalidInputError
from oiforge.reviews import VERDICTS, Verdicts, read_reviews, write_reviews

_HEADER = "# oiforge exclude list: ImageID[,box],reason (written by oiforge browse)\n"
T = TypeVar("T")
#: one exclusion: (image_id, box index or None)
Item = tuple[str, int | None]


def clean_reason(reason: str) -> str:
    """The reason as the exclude-list reader will read it back (one line, no ``#``, no
    separator spacing, never a bare number or a MID first, which would read as a box index
    or a label)."""
    text = " ".join(reason.replace("#", " ").split())[:200]
    text = re.sub(r"\s*,\s*", ",", text).strip(", ")
    first = text.split(",", 1)[0]
    if first.lstrip("-").isdigit() or is_mid(first):
        text = f"reason {text}"
    return text or "excluded in browse"


class _CuratedFile(Generic[T]):
    """A file read through ``reader``, cached per version, edited under locks."""

    def __init__(self, path: Path, reader: Callable[[Path | None], T]) -> None:
        self.path = path
        self._reader = reader
        self._lock = threading.RLock()
        self._cached: tuple[tuple[int, int, int] | None, T] | None = None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.with_name(self.path.name + ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def version(self) -> tuple[int, int, int] | None:
        """(inode, size, mtime_ns) of the file, or None when there is none."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def read(self) -> T:
        with self._lock:
            version = self.version()
            if self._cached is None or self._cached[0] != version or version is None:
                self._cached = (version, self._reader(self.path if version else None))
            return self._cached[1]


class ExcludeStore(_CuratedFile[ExcludeList]):
    """Read, add and remove exclusions of one exclude-list file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, read_exclude_list)

    def exclude(self, image_id: str, box: int | None, reason: str) -> ExcludeList:
        return self.exclude_many([(image_id, box)], reason)

    def undo(self, image_id: str, box: int | None) -> ExcludeList:
        return self.undo_many([(image_id, box)])

    def exclude_many(self, items: Iterable[Item], reason: str) -> ExcludeList:
        """Exclude every item with one reason, in one atomic write."""
        todo = [_check(i, b) for i, b in items]
        why = clean_reason(reason)
        with self._locked():
            ex = _copy(self.read())
            for image_id, box in todo:
                if box is None:
                    ex.images[image_id] = why
                else:
                    ex.boxes[(image_id, box)] = why
            return self._write(ex)

    def undo_many(self, items: Iterable[Item]) -> ExcludeList:
        """Remove every item's exclusion, in one atomic write."""
        todo = [_check(i, b) for i, b in items]
        with self._locked():
            ex = _copy(self.read())
            for image_id, box in todo:
                if box is None:
                    ex.images.pop(image_id, None)
                else:
                    ex.boxes.pop((image_id, box), None)
            return self._write(ex)

    def _write(self, ex: ExcludeList) -> ExcludeList:
        lines = [f"{i},{r}" if b is None else f"{i},{b},{r}" for i, b, r in ex.entries()]
        write_text_atomic(self.path, _HEADER + "".join(f"{line}\n" for line in lines))
        return ex


class ReviewStore(_CuratedFile[Verdicts]):
    """Verdicts on (image, class) labels, in the review file ``select``/``build`` read."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, read_reviews)

    def set_many(self, items: Iterable[tuple[str, str, str, str, float]]) -> Verdicts:
        """``(image_id, mid, verdict, name, confidence)`` items; verdict "" clears one."""
        todo = list(items)
        for image_id, mid, verdict, _, _ in todo:
            _check(image_id, None)
            if verdict not in ("", *VERDICTS) or not mid.startswith("/"):
                raise InvalidInputError("a verdict is confirmed, rejected or empty, on a MID")
        with self._locked():
            verdicts = dict(self.read())
            for image_id, mid, verdict, name, conf in todo:
                if verdict:
                    verdicts[(image_id, mid)] = (verdict, name, f"{conf:.3f}")
                else:
                    verdicts.pop((image_id, mid), None)
            write_reviews(self.path, verdicts)
            return verdicts


def _copy(ex: ExcludeList) -> ExcludeList:
    return ExcludeList(dict(ex.images), dict(ex.boxes))


def _check(image_id: str, box: int | None) -> Item:
    if not is_image_id(image_id):
        raise InvalidInputError(f"{image_id[:40]!r} is not an ImageID (16 hex chars)")
    if box is not None and box < 0:
        raise InvalidInputError("box index must be >= 0")
    return image_id, box
