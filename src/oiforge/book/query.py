"""SQL over the catalog views: people-free photos of many classes, and which classes mean people.

One query serves every candidate class of the book at once (the label and box copies are
sorted by class, so it reads only their row groups plus the people/depiction classes once).

Every class below Person and Human body (Subcategory *and* Part links: Man, Woman, Boy, Girl,
Human face, Human hand, Beard, ...) and every class named in ``words.PERSON_NAMES`` or
starting with ``Human `` counts as a person. An image with any of them, as a human-verified
label, a box, or a confident machine label, is never printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import duckdb

from oiforge.book.words import DEPICTION_NAMES, PERSON_NAMES

POSITIVE = 0.5  # human-verified labels are 0 (verified absent) or 1 (verified present)
MACHINE_PERSON = 0.5  # a machine label this sure of a person also excludes the image
MIN_BOX_AREA = 0.02  # smaller objects make poor crops
SAMPLE_FACTOR = 8  # candidates sampled per class per photo wanted (people, licences drop some)

_PHOTO_COLUMNS = (
    "label_mid, image_id, split, x_min, x_max, y_min, y_max, original_url, landing_url, "
    "thumbnail_url, license, author, author_profile_url, title, original_size, original_md5, "
    "rotation"
)


@dataclass(frozen=True)
class PhotoQuery:
    """What the photo query needs to know."""

    mids: tuple[str, ...]
    person_mids: tuple[str, ...]
    depiction_mids: tuple[str, ...]
    label_mode: str = "image"
    exclude_depictions: bool = True
    cc_by_only: bool = False
    commercial: bool = False  # leave out non-commercial (NC) licences
    omit_no_derivatives: bool = False  # leave out no-derivatives (ND) licences
    seed: int = 0
    per_class: int = 48
    force: tuple[str, ...] = ()  # ImageIDs ranked first wherever they qualify
    drop: tuple[str, ...] = ()  # ImageIDs never returned


def positives_sql() -> str:
    return (
        "SELECT label_mid, count(DISTINCT image_id) AS n FROM human_labels "
        f"WHERE confidence > {POSITIVE} GROUP BY label_mid"
    )


def positive_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Human-verified positive images per class (all ingested splits)."""
    return {mid: int(n) for mid, n in con.execute(positives_sql()).fetchall()}


def _candidates_sql(q: PhotoQuery) -> str:
    if q.label_mode == "box":
        depiction = "AND coalesce(is_depiction, 0) = 0" if q.exclude_depictions else ""
        return f"""
        SELECT label_mid, image_id, any_value(split) AS split,
               arg_max(x_min, (x_max - x_min) * (y_max - y_min)) AS x_min,
               arg_max(x_max, (x_max - x_min) * (y_max - y_min)) AS x_max,
               arg_max(y_min, (x_max - x_min) * (y_max - y_min)) AS y_min,
               arg_max(y_max, (x_max - x_min) * (y_max - y_min)) AS y_max,
               max((x_max - x_min) * (y_max - y_min)) AS area
        FROM boxes
        WHERE label_mid IN (SELECT unnest($mids::VARCHAR[]))
          AND coalesce(is_group_of, 0) = 0 {depiction}
          AND x_max > x_min AND y_max > y_min
        GROUP BY label_mid, image_id
        HAVING max((x_max - x_min) * (y_max - y_min)) >= {MIN_BOX_AREA}"""
    return f"""
        SELECT label_mid, image_id, any_value(split) AS split,
               NULL::FLOAT AS x_min, NULL::FLOAT AS x_max, NULL::FLOAT AS y_min,
               NULL::FLOAT AS y_max, 1.0 AS area
        FROM human_labels
        WHERE label_mid IN (SELECT unnest($mids::VARCHAR[])) AND confidence > {POSITIVE}
        GROUP BY label_mid, image_id"""


def _excluded_sql(q: PhotoQuery) -> str:
    people, drawn = "(SELECT unnest($people::VARCHAR[]))", "(SELECT unnest($drawn::VARCHAR[]))"
    parts = [
        f"SELECT image_id FROM human_labels WHERE label_mid IN {people} "
        f"AND confidence > {POSITIVE}",
        f"SELECT image_id FROM boxes WHERE label_mid IN {people}",
        f"SELECT image_id FROM machine_labels WHERE label_mid IN {people} "
        f"AND confidence >= {MACHINE_PERSON}",
    ]
    if q.exclude_depictions:
        parts += [
            f"SELECT image_id FROM human_labels WHERE label_mid IN {drawn} "
            f"AND confidence > {POSITIVE}",
            "SELECT image_id FROM boxes WHERE label_mid IN (SELECT unnest($mids::VARCHAR[])) "
            "AND is_depiction = 1",
        ]
    return "\nUNION\n".join(parts)


def _licence_sql(q: PhotoQuery) -> str:
    """Licence filters on ``i.license`` (Creative Commons URLs, any version)."""
    parts = []
    if q.cc_by_only:
        parts.append("regexp_matches(i.license, 'creativecommons\\.org/licenses/by/[0-9]')")
    if q.commercial:
        parts.append("NOT regexp_matches(lower(i.license), 'licenses/[a-z-]*nc[a-z-]*/')")
    if q.omit_no_derivatives:
        parts.append("NOT regexp_matches(lower(i.license), 'licenses/[a-z-]*nd[a-z-]*/')")
    return "".join(f" AND {p}" for p in parts)


def photos_sql(q: PhotoQuery) -> str:
    """Up to ``per_class`` people-free photos per class, best first."""
    licence = _licence_sql(q)
    return f"""
    WITH cand AS MATERIALIZED (
        SELECT *, list_contains($force::VARCHAR[], image_id) AS forced,
               hash(image_id, $seed) AS tie  -- stable within a DuckDB version; book.json pins
        FROM ({_candidates_sql(q)}) c0
        WHERE NOT list_contains($drop::VARCHAR[], image_id)
        -- a seeded sample per class first: the joins below then stay small on big classes
        QUALIFY row_number() OVER (PARTITION BY label_mid ORDER BY forced DESC, tie)
                <= $per_class * {SAMPLE_FACTOR}
    ),
    bad AS MATERIALIZED (SELECT DISTINCT image_id FROM ({_excluded_sql(q)}) x
            WHERE image_id IN (SELECT image_id FROM cand)),
    ranked AS (
        SELECT c.*, i.original_url, i.landing_url, i.thumbnail_url, i.license, i.author,
               i.author_profile_url, i.title, i.original_size, i.original_md5, i.rotation,
               row_number() OVER (
                   PARTITION BY c.label_mid
                   ORDER BY c.forced DESC,
                            floor(c.area * 10) DESC,
                            floor(log2(greatest(coalesce(i.original_size, 1), 1))) DESC,
                            c.tie
               ) AS rank
        FROM cand c
        JOIN images i ON i.image_id = c.image_id
        WHERE c.image_id NOT IN (SELECT image_id FROM bad) {licence}
    )
    SELECT {_PHOTO_COLUMNS} FROM ranked WHERE rank <= $per_class
    ORDER BY label_mid, rank"""


def query_photos(
    con: duckdb.DuckDBPyConnection, q: PhotoQuery
) -> dict[str, list[dict[str, object]]]:
    """Per class MID, its photo rows (dicts of ``_PHOTO_COLUMNS``), best first."""
    params = {
        "mids": list(q.mids),
        "people": list(q.person_mids),
        "seed": q.seed,
        "per_class": q.per_class,
        "force": list(q.force),
        "drop": list(q.drop),
    }
    if q.exclude_depictions:
        params["drawn"] = list(q.depiction_mids)
    cur = con.execute(photos_sql(q), params)
    names = [d[0] for d in cur.description]
    out: dict[str, list[dict[str, object]]] = {m: [] for m in q.mids}
    seen: set[tuple[str, str]] = set()
    for row in cur.fetchall():
        rec = dict(zip(names, row, strict=True))
        key = (str(rec["label_mid"]), str(rec["image_id"]))
        if key not in seen:  # an image listed twice in the metadata
            seen.add(key)
            out.setdefault(key[0], []).append(rec)
    return out


# -- who counts as a person ----------------------------------------------------------------
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
