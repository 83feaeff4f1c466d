"""Images and labels per class, per split: every count of positives, and trainable classes.

A *positive image* of a class is an image with a human-verified positive label of it
(``human_labels`` rows with Confidence 1), counted once however many rows say so; for machine
labels, an image with any machine label of the class. An image belongs to one split, so
per-split counts add up. Ingest keeps these counts beside each Parquet copy (``*.counts.parquet``:
``n`` rows and ``images`` distinct images per label), so they are read, not recounted; DuckDB
counts them where a file has none.

Trainable classes: labels with enough images to train and to validate on, for any version.
The V1 README: "only around 6000 labels are considered 'trainable' with at least 50 images in
the validation set and at least 20 images in the training set". What is counted, per label and
split, is the number of positive images: those are the labels the READMEs recommend training
on, and a negative verification (``Confidence`` 0) says the class is *not* in the image. Where
a release has no human labels for a split, its machine labels are counted instead (any
confidence): that is v1's training set, the only labels v1 has there, as its README counted
them. The table says which source each count came from. v2/v3 defined their own lists
differently (30 train and 5 validation-or-test human-verified samples): ``min_train=30,
min_val=5, val_splits=("validation", "test")`` reproduces that rule.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pyarrow as pa
import pyarrow.parquet as pq

from oiforge.atomic import atomic_open
from oiforge.catalog.files import official_files
from oiforge.contracts.selection import SPLITS
from oiforge.errors import InvalidInputError

if TYPE_CHECKING:
    import duckdb

    from oiforge.catalog.catalog import Catalog


log = logging.getLogger(__name__)

COUNT_KINDS = {"human_labels": "positives", "boxes": "boxes"}
PerSplit = dict[str, dict[str, int]]  # split -> label MID -> count


def sidecar_positives(
    cat: Catalog, kind: str = "human_labels", splits: Iterable[str] | None = None
) -> PerSplit | None:
    """Positive images per split and label from the ingest's per-file counts; None when a file
    of ``kind`` (in ``splits``; default all) has none or none is ingested."""
    return _sidecar_sums(cat, kind, splits, "images", complete=True)


def sql_positives(
    con: duckdb.DuckDBPyConnection, kind: str = "human_labels", splits: Iterable[str] | None = None
) -> PerSplit:
    """The same counts with one ``GROUP BY`` over the ``kind`` view of ``con``."""
    where = ["label_mid IS NOT NULL"] + (["confidence = 1"] if kind == "human_labels" else [])
    params: list[str] = []
    if splits is not None:
        params = list(splits)
        where.append(f"split IN ({', '.join('?' for _ in params) or 'NULL'})")
    rows = con.execute(
        f"SELECT split, label_mid, count(DISTINCT image_id) FROM {kind} "
        f"WHERE {' AND '.join(where)} GROUP BY split, label_mid",
        params,
    ).fetchall()
    out: PerSplit = {}
    for split, mid, n in rows:
        out.setdefault(str(split), {})[str(mid)] = int(n)
    return out


def positives_by_split(
    cat: Catalog, kind: str = "human_labels", splits: Iterable[str] | None = None
) -> PerSplit:
    """Positive images per split and label: from the sidecars, else counted with DuckDB."""
    wanted = None if splits is None else list(splits)
    found = sidecar_positives(cat, kind, wanted)
    return found if found is not None else sql_positives(cat.connection, kind, wanted)


def positive_images(
    cat: Catalog, splits: Iterable[str] | None = None, kind: str = "human_labels"
) -> dict[str, int]:
    """Per label: positive images over ``splits`` (default: every ingested split)."""
    return sum_splits(positives_by_split(cat, kind, splits).values())


def sum_splits(per_split: Iterable[dict[str, int]]) -> dict[str, int]:
    """Per label: the counts of several splits added up."""
    out: dict[str, int] = {}
    for counts in per_split:
        for mid, n in counts.items():
            out[mid] = out.get(mid, 0) + n
    return out


def class_counts(cat: Catalog, mids: list[str] | None) -> pa.Table:
    """One row per class: ``label_mid, label_name, boxable, positives_<split>, boxes_<split>``
    (label rows and boxes, from the sidecars of what is ingested; 0 elsewhere)."""
    wanted = list(cat.classes.names) if mids is None else [cat.resolve(m).mid for m in mids]
    cols: dict[str, pa.Array] = {
        "label_mid": pa.array(wanted, pa.string()),
        "label_name": pa.array([cat.name(m) for m in wanted], pa.string()),
        "boxable": pa.array([m in cat.classes.boxable for m in wanted], pa.bool_()),
    }
    for kind, prefix in COUNT_KINDS.items():
        per_split = _sidecar_sums(cat, kind, SPLITS, "n", complete=False) or {}
        for split in SPLITS:
            column = per_split.get(split, {})
            cols[f"{prefix}_{split}"] = pa.array([column.get(m, 0) for m in wanted], pa.int64())
    return pa.table(cols)


def _sidecar_sums(
    cat: Catalog, kind: str, splits: Iterable[str] | None, column: str, *, complete: bool
) -> PerSplit | None:
    """``column`` of the per-file counts summed per split and label. ``complete``: None when
    a file has no readable counts (else such files are skipped)."""
    wanted: Sequence[str] | None = None if splits is None else list(splits)
    files = [
        i for i in cat.ingested.values()
        if i.kind == kind and (wanted is None or i.split in wanted)
    ]  # fmt: skip
    if complete and not files:
        return None
    out: PerSplit = {}
    for item in files:
        try:
            if item.counts is None:
                raise FileNotFoundError("no counts file")
            data = pq.read_table(item.counts, columns=["label_mid", column]).to_pydict()
        except (OSError, pa.ArrowException, KeyError) as exc:
            if not complete:
                continue
            log.info("counting %s with DuckDB: %s", item.relpath, exc)
            return None
        per_label = out.setdefault(item.split, {})
        for mid, n in zip(data["label_mid"], data[column], strict=True):
            if mid is not None:
                per_label[mid] = per_label.get(mid, 0) + int(n)
    return out


DEFAULT_MIN_VAL: Final = 50
DEFAULT_MIN_TRAIN: Final = 20
DEFAULT_VAL_SPLITS: Final = ("validation",)
TRAINABLE_SCHEMA: Final = pa.schema(
    [
        ("label_mid", pa.string()),
        ("label_name", pa.string()),
        ("boxable", pa.bool_()),
        ("train_images", pa.int64()),
        ("val_images", pa.int64()),
        ("train_source", pa.string()),
        ("val_source", pa.string()),
        ("trainable", pa.bool_()),
    ]
)


def count_source(version: str, split: str) -> str:
    """The label table counted for ``split``: ``human_labels``, else ``machine_labels``."""
    for kind in ("human_labels", "machine_labels"):
        if official_files(version, (kind,), (split,)):
            return kind
    raise InvalidInputError(f"Open Images {version} has no labels for the {split!r} split")


def _check(min_val: int, min_train: int, val_splits: Sequence[str]) -> None:
    if min_val < 0 or min_train < 0:
        raise InvalidInputError("--min-val and --min-train must be 0 or more")
    if not val_splits or "train" in val_splits:
        raise InvalidInputError("validation splits: validation and/or test, not train")


def image_counts(cat: Catalog, kind: str, splits: Sequence[str]) -> dict[str, int]:
    """Per label: distinct images with a positive label (human) or any label (machine)."""
    cat.ensure([kind], splits)
    return positive_images(cat, splits, kind)


def _val_source(version: str, val_splits: Sequence[str]) -> str:
    kinds = {count_source(version, s) for s in val_splits}
    if len(kinds) > 1:  # not in any release; refuse rather than mix sources silently
        raise InvalidInputError(f"{version}: {', '.join(val_splits)} have different label kinds")
    return kinds.pop()


def trainable_classes(
    cat: Catalog,
    min_val: int = DEFAULT_MIN_VAL,
    min_train: int = DEFAULT_MIN_TRAIN,
    val_splits: Sequence[str] = DEFAULT_VAL_SPLITS,
    include_all: bool = False,
) -> pa.Table:
    """The labels with >= ``min_val`` validation and >= ``min_train`` training images.

    One row per label (see ``TRAINABLE_SCHEMA``), most validation images first;
    ``include_all`` keeps the labels below the thresholds too (``trainable`` false).
    ``.to_pandas()`` for a frame.
    """
    _check(min_val, min_train, val_splits)
    train_kind = count_source(cat.version, "train")
    val_kind = _val_source(cat.version, val_splits)
    train = image_counts(cat, train_kind, ["train"])
    val = image_counts(cat, val_kind, list(val_splits))
    rows = []
    for mid in sorted(set(train) | set(val)):
        t, v = train.get(mid, 0), val.get(mid, 0)
        ok = t >= min_train and v >= min_val
        if ok or include_all:
            rows.append((mid, t, v, ok))
    rows.sort(key=lambda r: (not r[3], -r[2], -r[1], r[0]))
    log.info("%s: %d of %d labels trainable", cat.version, sum(r[3] for r in rows), len(rows))
    return _table(cat, rows, _source_name(train_kind), _source_name(val_kind))


def _source_name(kind: str) -> str:
    return "human" if kind == "human_labels" else "machine"


def _table(
    cat: Catalog, rows: list[tuple[str, int, int, bool]], train_src: str, val_src: str
) -> pa.Table:
    mids = [r[0] for r in rows]
    cols = [
        mids,
        [cat.name(m) for m in mids],
        [m in cat.classes.boxable for m in mids],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [train_src] * len(rows),
        [val_src] * len(rows),
        [r[3] for r in rows],
    ]
    return pa.Table.from_arrays(
        [pa.array(c, f.type) for c, f in zip(cols, TRAINABLE_SCHEMA, strict=True)],
        schema=TRAINABLE_SCHEMA,
    )


def write_table(table: pa.Table, path: Path) -> None:
    """``table`` to ``path`` (``.csv`` or ``.parquet``), atomically."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InvalidInputError(f"--out wants a .csv or .parquet file, not {path.name!r}")
    with atomic_open(path) as fh:
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, fh)
        else:
            pq.write_table(table, fh)
