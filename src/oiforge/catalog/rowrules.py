"""Which label and box rows a selection can use, and the order of an image's boxes (SQL).

Shared by the selection copies (``selcopy``: applied once, when a copy is built) and the
selection query over the plain tables (``selectsql``: applied per query; PostgreSQL's route),
so that both routes give the same rows in the same order.
"""

from __future__ import annotations

from typing import Final

from oiforge.contracts import BOX_FLAGS

COORDS: Final = ("x_min", "x_max", "y_min", "y_max")
#: a box's columns in ``SELECTION_SCHEMA`` (null in image mode)
BOX_COLS: Final = (*COORDS, *BOX_FLAGS)


def box_order(alias: str = "", clamp: bool = False) -> tuple[str, ...]:
    """The order of an image's boxes (``box_index``) after the class, as SQL keys: source MID,
    group-of boxes last, then ``box_keys`` (rows equal in all of these are equal in every
    output column).

    Group-of comes first because the default drops them: a copy sorted ``label_mid``, group-of,
    ``image_key``, then ``box_keys`` holds the rows a default query keeps as one run per class.
    """
    p = f"{alias}." if alias else ""
    return (f"{p}label_mid", grouped(alias), *box_keys(alias, clamp))


def box_keys(alias: str = "", clamp: bool = False) -> tuple[str, ...]:
    """The last keys of ``box_order``: coordinates (``clamp``: not yet clamped), flags, source,
    confidence."""
    p = f"{alias}." if alias else ""
    coords = (clamped(p + c) if clamp else p + c for c in COORDS)
    return (*coords, *(p + f for f in BOX_FLAGS), f"{p}source", f"{p}confidence")


def grouped(alias: str = "") -> str:
    """A group-of box (NULL counts as not: the default ``drop`` keeps NULLs)."""
    p = f"{alias}." if alias else ""
    return f"coalesce({p}is_group_of, 0) = 1"


def valid_id(column: str) -> str:
    """An ImageID is what becomes a file name: 16 lowercase hex characters, nothing else."""
    return f"regexp_full_match({column}, '[0-9a-f]{{16}}')"


def valid_box(alias: str) -> str:
    """A box with a positive area inside the image (a hair's breadth outside is clamped)."""
    b = alias
    return (
        f"{b}.x_min < {b}.x_max AND {b}.y_min < {b}.y_max AND {b}.x_min >= -0.01 "
        f"AND {b}.y_min >= -0.01 AND {b}.x_max <= 1.01 AND {b}.y_max <= 1.01"
    )


def clamped(column: str) -> str:
    """A normalized coordinate clamped to [0, 1]."""
    return f"least(greatest({column}, 0), 1)"
