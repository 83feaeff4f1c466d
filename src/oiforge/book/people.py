"""Which classes mean "a person is in this photo": the hierarchy plus a built-in name list.

Every class below Person and Human body (Subcategory *and* Part links: Man, Woman, Boy, Girl,
Human face, Human hand, Beard, ...) and every class named in ``words.PERSON_NAMES`` or
starting with ``Human `` counts. An image with any of them, as a human-verified label, a box,
or a confident machine label, is never printed.
"""

from __future__ import annotations

from typing import Final

import duckdb

from oiforge.book.words import DEPICTION_NAMES, PERSON_NAMES

PERSON_ROOTS: Final = ("/m/01g317", "/m/02p0tk3")  # Person, Human body (stable MIDs)
_NOT_PEOPLE: Final = frozenset(
    {"human settlement", "human torpedo", "human body louse", "human torch", "human height"}
)


def _descendants(con: duckdb.DuckDBPyConnection, roots: list[str]) -> set[str]:
    rows = con.execute(
        """
        WITH RECURSIVE below(mid) AS (
            SELECT unnest(?::VARCHAR[])
            UNION
            SELECT h.child_mid FROM hierarchy h JOIN below b ON h.parent_mid = b.mid
        )
        SELECT mid FROM below
        """,
        [roots],
    ).fetchall()
    return {r[0] for r in rows}


def _mids_named(con: duckdb.DuckDBPyConnection, names: frozenset[str]) -> set[str]:
    rows = con.execute(
        "SELECT label_mid FROM classes WHERE lower(label_name) IN (SELECT unnest(?::VARCHAR[]))",
        [sorted(names)],
    ).fetchall()
    return {r[0] for r in rows}


def person_mids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """MIDs of every class that shows a person or a part of one."""
    roots = list(PERSON_ROOTS) + sorted(
        _mids_named(con, frozenset({"person", "human body", "human"}))
    )
    mids = _descendants(con, roots) | _mids_named(con, PERSON_NAMES)
    human = con.execute(
        "SELECT label_mid, lower(label_name) FROM classes WHERE lower(label_name) LIKE 'human %'"
    ).fetchall()
    mids |= {mid for mid, name in human if name not in _NOT_PEOPLE}
    return mids


def depiction_mids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """MIDs of classes that mean the image is a drawing, cartoon or artwork."""
    return _mids_named(con, DEPICTION_NAMES)
