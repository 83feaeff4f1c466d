"""Trainable classes: labels with enough images to train and to validate on, for any version.

The V1 README: "only around 6000 labels are considered 'trainable' with at least 50 images in
the validation set and at least 20 images in the training set". What is counted, per label and
split, is the number of *distinct images* with a human-verified positive label (``human_labels``
rows with ``Confidence`` 1): those are the labels the READMEs recommend training on, and a
negative verification (``Confidence`` 0) says the class is *not* in the image. Where a release
has no human labels for a split, its machine labels are counted instead (any confidence): that
is v1's training set, the only labels v1 has there, as its README counted them. The table says
which source each count came from. v2/v3 defined their own lists differently (30 train and 5
validation-or-test human-verified samples): ``min_train=30, min_val=5,
val_splits=("validation", "test")`` reproduces that rule.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pyarrow as pa
import pyarrow.parquet as pq

from oiforge.atomic import atomic_open
from oiforge.catalog.counts import positive_images
from oiforge.catalog.files import official_files
from oiforge.errors import InvalidInputError

if TYPE_CHECKING:
    from oiforge.catalog.catalog import Catalog

log = logging.getLogger(__name__)

DEFAULT_MIN_VAL: Final = 50
DEFAULT_MIN_TRAIN: Final = 20
DEFAULT_VAL_SPLITS: Final = ("validation",)
SCHEMA: Final = pa.schema(
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

    One row per label (see ``SCHEMA``), most validation images first; ``include_all`` keeps
    the labels below the thresholds too (``trainable`` false). ``.to_pandas()`` for a frame.
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
        [pa.array(c, f.type) for c, f in zip(cols, SCHEMA, strict=True)], schema=SCHEMA
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
