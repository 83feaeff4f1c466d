"""The label review file: a curator's verdict on (image, class) labels, written by ``browse``.

A CSV file with a header; ``#`` lines are comments::

    image_id,label_mid,verdict,label_name,confidence
    000a1249af2bc5f0,/m/01yrx,rejected,Cat,0.62

``verdict`` is ``confirmed`` or ``rejected``. ``select --review FILE`` drops the rejected
labels from a selection and marks the confirmed ones (``source`` becomes ``reviewed``);
``build --review FILE`` leaves the samples of rejected labels out, and only those: every box of
the label in box mode, the label's sample in image mode (the image stays under its other
labels); they are recorded in ``excluded.parquet`` and the lock, as exclude-list entries.
Only ``image_id``, ``label_mid`` and ``verdict`` are read; the other columns help a person
reading the file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from oiforge.atomic import write_text_atomic
from oiforge.contracts import ExcludeList, is_image_id, read_selection_table
from oiforge.errors import InvalidInputError

CONFIRMED: Final = "confirmed"
REJECTED: Final = "rejected"
VERDICTS: Final = (CONFIRMED, REJECTED)
#: ``source`` of a machine label a curator confirmed, in a selection made with a review file
REVIEWED_SOURCE: Final = "reviewed"
COLUMNS: Final = ("image_id", "label_mid", "verdict", "label_name", "confidence")
_HEADER: Final = "# oiforge label review (written by oiforge browse; read by select and build)\n"

#: (image_id, label_mid) -> (verdict, label_name, confidence)
Verdicts = dict[tuple[str, str], tuple[str, str, str]]


def read_reviews(path: Path | None) -> Verdicts:
    """Parse a review file (``None`` or a missing file → no verdicts); a bad row is an error."""
    if path is None or not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read review file {path}: {exc}") from exc
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    out: Verdicts = {}
    for n, row in enumerate(csv.reader(lines), 1):
        if n == 1 and row[:1] == ["image_id"]:
            continue
        _parse_row(row, f"{path} row {n}", out)
    return out


def _parse_row(row: list[str], where: str, out: Verdicts) -> None:
    if len(row) < 3:
        raise InvalidInputError(f"{where}: want image_id,label_mid,verdict")
    image_id, mid, verdict = (c.strip() for c in row[:3])
    if not is_image_id(image_id.lower()):
        raise InvalidInputError(f"{where}: {image_id[:40]!r} is not an ImageID (16 hex chars)")
    if verdict not in VERDICTS or not mid:
        raise InvalidInputError(f"{where}: verdict must be confirmed or rejected, with a MID")
    extra = [*row[3:5], "", ""][:2]
    out[(image_id.lower(), mid)] = (verdict, extra[0], extra[1])


def write_reviews(path: Path, verdicts: Mapping[tuple[str, str], tuple[str, str, str]]) -> None:
    """Write the whole file atomically (sorted, so equal verdicts give equal bytes)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for (image_id, mid), (verdict, name, conf) in sorted(verdicts.items()):
        writer.writerow([image_id, mid, verdict, name, conf])
    write_text_atomic(path, _HEADER + buf.getvalue())


def _keys(table: pa.Table) -> list[tuple[str, str]]:
    ids = table.column("image_id").to_pylist()
    return list(zip(ids, table.column("label_mid").to_pylist(), strict=True))


def apply_reviews(table: pa.Table, verdicts: Verdicts) -> pa.Table:
    """A selection without its rejected labels; confirmed labels get ``source = reviewed``."""
    if not verdicts or not table.num_rows:
        return table
    verdict = [verdicts.get(k, ("",))[0] for k in _keys(table)]
    marks = pa.array(verdict, pa.string())
    source = pc.if_else(pc.equal(marks, CONFIRMED), REVIEWED_SOURCE, table.column("source"))
    table = table.set_column(table.schema.get_field_index("source"), "source", source)
    return table.filter(pc.not_equal(marks, REJECTED))


def rejected_rows(table: pa.Table, verdicts: Verdicts) -> list[tuple[str, int | str, str]]:
    """``(image_id, box_index or label MID, reason)`` exclusions for a build: every box of a
    rejected label, or (image mode, no box) the label itself on that image."""
    out: list[tuple[str, int | str, str]] = []
    boxes = table.column("box_index").to_pylist()
    for (image_id, mid), box in zip(_keys(table), boxes, strict=True):
        hit = verdicts.get((image_id, mid))
        if hit is not None and hit[0] == REJECTED:
            out.append((image_id, mid if box is None else box, f"review rejected {hit[1] or mid}"))
    return out


def read_review_file(path: Path) -> Verdicts:
    """A review file that must exist (``select --review``, ``build --review``)."""
    if not path.is_file():
        raise InvalidInputError(f"no review file {path}")
    return read_reviews(path)


def exclude_rejected(exclude: ExcludeList, selection: Path, review: Path) -> ExcludeList:
    """``exclude`` plus every sample of ``selection`` whose label ``review`` rejected."""
    verdicts = read_review_file(review)
    table = read_selection_table(selection, ["image_id", "label_mid", "box_index"])
    out = ExcludeList(dict(exclude.images), dict(exclude.boxes), dict(exclude.labels))
    for image_id, what, reason in rejected_rows(table, verdicts):
        if isinstance(what, str):
            out.labels.setdefault((image_id, what), reason)
        else:
            out.boxes.setdefault((image_id, what), reason)
    return out
