"""The sample's first releases (v1 2016_08, v2 2017_07, v3 2017_11): tarballs of CSVs.

Each archive of ``catalog/files.py``'s ``LEGACY_FILES`` is written at ``openimages/<relpath>``
with the members the official tarballs hold, in their layouts: ``images.csv`` with ``Subset``
and no ``Rotation`` (11 columns); label files ``ImageID,Source,LabelName,Confidence``;
``annotations-human-bbox.csv`` with 8 columns on train and 13 on validation/test. v1 has no
test split: its validation set is the later validation + test (the V2 changelist split it),
so v1 lists the sample's test images under ``validation`` (``Subset`` says so too). v1's
``dict.csv`` (``"mid","name"``, every field quoted, lower-case names, no header) is served at
``openimages/2016_08/dict.csv``. Tarballs are byte-stable (gzip and tar times are 0).
"""

from __future__ import annotations

import csv
import gzip
import io
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from oiforge.atomic import write_bytes_atomic
from oiforge.catalog.files import LEGACY_FILES, Archive, OfficialFile
from oiforge.mirror.labels import Labels
from oiforge.mirror.metadata import (
    BOX_COLUMNS,
    IMAGE_COLUMNS,
    LABEL_COLUMNS,
    Encoded,
    box_rows,
    image_rows,
    label_rows,
    to_csv,
)
from oiforge.mirror.plan import PlannedImage
from oiforge.paths import package_data

LEGACY_IMAGE_COLUMNS = IMAGE_COLUMNS[:11]  # no Rotation before 2018_04
TRAIN_BOX_COLUMNS = BOX_COLUMNS[:8]  # v2/v3 train boxes carry no Is* flags
_V1_SPLITS = {"train": ("train",), "validation": ("validation", "test")}


def _splits_of(f: OfficialFile) -> tuple[str, ...]:
    """The sample splits a file of ``f.split`` covers (v1 validation = validation + test)."""
    if f.version == "v1" and f.split:
        return _V1_SPLITS[f.split]
    return (f.split,) if f.split else ()


def _images_csv(f: OfficialFile, chosen: list[PlannedImage], enc: dict[str, Encoded]) -> bytes:
    rows = [row[:11] for row in image_rows(chosen, enc)]
    for row in rows:
        row[1] = f.split or row[1]  # Subset: v1 calls its test images validation
    return to_csv(LEGACY_IMAGE_COLUMNS, rows, "\n")


def _member_bytes(
    f: OfficialFile, images: list[PlannedImage], enc: dict[str, Encoded], labels: Labels
) -> tuple[bytes, int]:
    splits = _splits_of(f)
    chosen = [im for im in images if im.split in splits]
    ids = {im.image_id for im in chosen}
    if f.kind == "images":
        return _images_csv(f, chosen, enc), len(chosen)
    if f.kind in ("human_labels", "machine_labels"):
        rows = label_rows(labels.human if f.kind == "human_labels" else labels.machine, ids)
        return to_csv(LABEL_COLUMNS, rows, "\n"), len(rows)
    if f.kind == "boxes":
        rows = box_rows(chosen, with_xclick=False)
        if f.split == "train":
            return to_csv(TRAIN_BOX_COLUMNS, [r[:8] for r in rows], "\n"), len(rows)
        return to_csv(BOX_COLUMNS, rows, "\n"), len(rows)
    return _class_list(f)


def _class_rows() -> list[tuple[str, str]]:
    text = package_data("openimages", "oidv6-class-descriptions.csv").read_text("utf-8")
    return [(r[0], r[1]) for r in csv.reader(io.StringIO(text)) if len(r) == 2]


def _boxable_mids() -> list[str]:
    text = package_data("openimages", "class-descriptions-boxable.csv").read_text("utf-8")
    return [r[0] for r in csv.reader(io.StringIO(text)) if r]


def _class_list(f: OfficialFile) -> tuple[bytes, int]:
    if f.kind == "class_descriptions_boxable":
        mids = _boxable_mids()
        return "".join(f"{m}\n" for m in mids).encode(), len(mids)
    rows = _class_rows()
    if f.version == "v1":
        return dict_csv(rows), len(rows)
    return _plain_csv(rows), len(rows)


def _plain_csv(rows: Iterable[Sequence[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8")


def dict_csv(rows: Iterable[tuple[str, str]]) -> bytes:
    """v1's ``dict.csv``: ``"mid","name"`` with every field quoted, names lower-cased."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerows((mid, name.lower()) for mid, name in rows)
    return buf.getvalue().encode("utf-8")


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A ``.tar.gz`` of ``members`` (name -> bytes), in order, with every time set to 0."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def write_legacy(
    root: Path, images: list[PlannedImage], encoded: dict[str, Encoded], labels: Labels
) -> dict[str, dict[str, object]]:
    """Write every v1-v3 tarball (and v1's ``dict.csv``); per-relpath facts for sample.json."""
    facts: dict[str, dict[str, object]] = {}
    archives: dict[Archive, dict[str, bytes]] = {}
    for version, files in LEGACY_FILES.items():
        for f in files:
            if f.kind == "hierarchy" or f.relpath in facts:
                continue
            data, count = _member_bytes(f, images, encoded, labels)
            facts[f.relpath] = {"version": version, "kind": f.kind, "split": f.split,
                                "rows": count, "size": len(data),
                                "archive": f.archive.relpath if f.archive else None}  # fmt: skip
            if f.archive is None:
                write_bytes_atomic(root / "openimages" / f.relpath, data)
            else:
                archives.setdefault(f.archive, {})[f.member or f.relpath] = data
    for archive, members in archives.items():
        data = tar_gz(members)
        write_bytes_atomic(root / "openimages" / archive.relpath, data)
        facts[archive.relpath] = {"kind": "archive", "members": list(members), "size": len(data)}
    return facts
