"""The exclude list: ImageIDs (optionally with a box index or a label) to leave out, and why.

Written by hand or by ``oiforge browse``; read by ``oiforge build`` (``--exclude-list``, and
kept in the dataset's lock). One entry a line:
``ImageID[,box_index|label_mid][,reason]`` (commas or tabs): a whole image, one box of it, or
one label of it (a MID such as ``/m/0bt9lr``: the samples of that label on that image, as
``build --review`` records a rejected label); ``#`` starts a comment; a bad line is a named
error (:class:`~oiforge.errors.InvalidInputError`) with its file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from oiforge.contracts.selection import is_image_id, is_mid
from oiforge.errors import InvalidInputError

_SEP = re.compile(r"\s*[,\t]\s*")


@dataclass
class ExcludeList:
    """Image-, box- and label-level exclusions with their reasons."""

    images: dict[str, str] = field(default_factory=dict)
    boxes: dict[tuple[str, int], str] = field(default_factory=dict)
    labels: dict[tuple[str, str], str] = field(default_factory=dict)  # (image_id, MID)

    def reason(
        self, image_id: str, box_index: int | None, label_mid: str | None = None
    ) -> str | None:
        """Why this image (or box, or label of it) is excluded; ``None`` if it is not."""
        if image_id in self.images:
            return self.images[image_id]
        if box_index is not None and (image_id, box_index) in self.boxes:
            return self.boxes[(image_id, box_index)]
        if label_mid is not None:
            return self.labels.get((image_id, label_mid))
        return None

    def entries(self) -> list[list[object]]:
        """A canonical, sorted form (for the lock file): ``[image_id, None|box|MID, reason]``."""
        out: list[list[object]] = [[i, None, r] for i, r in sorted(self.images.items())]
        out += [[i, b, r] for (i, b), r in sorted(self.boxes.items())]
        out += [[i, m, r] for (i, m), r in sorted(self.labels.items())]
        return out

    @classmethod
    def from_entries(cls, entries: list[list[object]]) -> ExcludeList:
        ex = cls()
        for image_id, what, reason in entries:
            if isinstance(what, int):
                ex.boxes[(str(image_id), what)] = str(reason)
            elif isinstance(what, str):
                ex.labels[(str(image_id), what)] = str(reason)
            else:
                ex.images[str(image_id)] = str(reason)
        return ex


def _parse_line(text: str, where: str, ex: ExcludeList) -> None:
    parts = _SEP.split(text, maxsplit=2)
    image_id = parts[0].strip().lower()
    if not is_image_id(image_id):
        raise InvalidInputError(f"{where}: {parts[0]!r} is not an ImageID (16 hex chars)")
    rest = parts[1:]
    box: int | None = None
    mid = rest.pop(0).strip() if rest and is_mid(rest[0].strip()) else None
    if rest and mid is None and rest[0].strip().lstrip("-").isdigit():
        box = int(rest.pop(0))
        if box < 0:
            raise InvalidInputError(f"{where}: box index must be >= 0")
    reason = ",".join(rest).strip() or "listed"
    if mid is not None:
        ex.labels[(image_id, mid)] = reason
    elif box is None:
        ex.images[image_id] = reason
    else:
        ex.boxes[(image_id, box)] = reason


def read_exclude_list(path: Path | None) -> ExcludeList:
    """Parse an exclude-list file (``None`` → empty); a bad line is a clear error."""
    ex = ExcludeList()
    if path is None:
        return ex
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read exclude list {path}: {exc}") from exc
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if text and text.lower() != "imageid" and not text.lower().startswith("imageid,"):
            _parse_line(text, f"{path}:{n}", ex)
    return ex
