"""Which label and box rows a selection can use, and the order of an image's boxes (SQL).

Shared by the selection copies (``selcopy``: applied once, when a copy is built) and the
selection query over the plain tables (``selectsql``: applied per query; PostgreSQL's route),
so that both routes give the same rows in the same order.
"""

from __future__ import annotations

from typing import Final

from oiforge.contracts import BOX_FLAGS

COORDS: Final = ("x_min", "x_max", "y_min", "y_max")
#: an image's boxes (``box_index``), after the class: source MID, clamped coordinates, flags,
#: source, confidence (rows equal in all of these are equal in every output column).
BOX_ORDER: Final = ("label_mid", *COORDS, *BOX_FLAGS, "source", "confidence")


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
