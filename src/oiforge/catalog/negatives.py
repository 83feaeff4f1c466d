"""Negatives added to a selection ("X vs not X"): photos without the selected classes.

``negatives: verified`` takes photos a human verified as not showing a selected class (an
image-level label with Confidence 0); ``random`` draws photos from the image list; ``both``
takes the verified ones first and draws the rest. Either way a photo qualifies only when it
has no human-verified positive of any selected class or any of its sub-classes (nor a
machine label of one at ``min_confidence``, when machine labels are in use), no excluded
class, and is not already in the selection. A photo drawn at random is *unknown* for the
classes, not a verified negative: nobody looked.

How many: per split, ``negatives_ratio`` x the positive photos of an average selected class
in that split (one class: its own count), drawn in ``md5(image_id, seed)`` order. With
``verified`` a split that has too few is a :class:`NotEnoughNegativesError` naming the counts
and the alternatives.

The rows (``role = 'background'``) name the negatives' class (``label_name``, e.g. ``not Hot
dog``); a verified photo has a row per selected class it was verified against (``label_mid``:
that class), a random one a single row with no ``label_mid`` and ``source = 'random'``. The
query reads the plain tables (``human_labels``, ``machine_labels``, ``images``), so the
local catalog and the PostgreSQL pull share it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import duckdb
import pyarrow as pa

from oiforge.catalog.ingest import IMAGE_COLS
from oiforge.catalog.rowrules import BOX_COLS
from oiforge.catalog.selectsql import Target, excluded_images, in_list, keyed, negative_pairs, q
from oiforge.contracts.selection import BACKGROUND, RANDOM_SOURCE, SPLITS
from oiforge.errors import NotEnoughNegativesError
from oiforge.spec import SelectSpec

log = logging.getLogger(__name__)

_HEX = "printf('%016x', {})"
_NONE = "SELECT NULL::UBIGINT AS image_key, NULL::INTEGER AS split_rank WHERE false"


def wanted_negatives(sel: SelectSpec, positives: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Negatives per split: ``negatives_ratio`` x the mean positive images of a class."""
    out: dict[str, int] = dict.fromkeys(sel.splits, 0)
    if not positives:
        return out
    for split in sel.splits:
        mean = sum(per[split] for per in positives.values()) / len(positives)
        out[split] = round(sel.negatives_ratio * mean)
    return out


def background_rows(
    con: duckdb.DuckDBPyConnection,
    sel: SelectSpec,
    targets: list[Target],
    excluded: frozenset[str],
    taken: pa.Array,
    wanted: Mapping[str, int],
    machine: bool,
) -> pa.Table:
    """The negatives' rows (selection columns, ``role = 'background'``, no ``spec_hash``).

    ``taken``: the ImageIDs already selected; ``wanted``: negatives per split.
    """
    splits = tuple(s for s in sel.splits if wanted.get(s, 0) > 0)
    con.register("bg_taken", pa.table({"image_id": pa.array(taken, pa.string())}))
    forbidden = _forbidden(sel, targets, excluded, machine)
    con.execute(f"CREATE OR REPLACE TEMP TABLE bg_forbid AS {forbidden}")
    need = _need_cte(wanted, splits)
    chosen, verified = _NONE, sel.negatives in ("verified", "both") and bool(splits)
    _verified_candidates(con, targets, splits if verified else ())
    if verified:
        _check_enough(con, sel, targets, wanted, splits)
        ranked = _ranked("bg_v_images", sel)
        chosen = (
            f"WITH {need} SELECT image_key, split_rank FROM ({ranked}) r "
            "JOIN need USING (split_rank) WHERE rn <= n"
        )
    con.execute(f"CREATE OR REPLACE TEMP TABLE bg_chosen_v AS {chosen}")
    random = _NONE
    if sel.negatives in ("random", "both") and splits:
        random = _random_sql(sel, need)
    con.execute(f"CREATE OR REPLACE TEMP TABLE bg_chosen_r AS {random}")
    table = con.sql(_rows_sql(sel, targets)).to_arrow_table()
    con.unregister("bg_taken")
    log.info("negatives: %d rows (%s)", table.num_rows, sel.negatives)
    return table


def _forbidden(
    sel: SelectSpec, targets: list[Target], excluded: frozenset[str], machine: bool
) -> str:
    """Images that may not be negatives: a positive of a class's family, an excluded class,
    or already selected."""
    family = in_list(sorted({m for t in targets for m in t.family}))
    splits = in_list(sel.splits)
    parts = [
        f"SELECT image_key FROM {keyed('human_labels')} WHERE label_mid IN {family} "
        f"AND confidence = 1 AND split IN {splits}",
        "SELECT TRY_CAST('0x' || image_id AS UBIGINT) AS image_key FROM bg_taken",
    ]
    if machine and sel.min_confidence is not None:
        parts.append(
            f"SELECT image_key FROM {keyed('machine_labels')} WHERE label_mid IN {family} "
            f"AND confidence >= {float(sel.min_confidence)!r} AND split IN {splits}"
        )
    if excluded:
        parts.append(excluded_images(excluded, splits, copies=False))
    return " UNION ".join(parts)


def _verified_candidates(
    con: duckdb.DuckDBPyConnection, targets: list[Target], splits: tuple[str, ...]
) -> None:
    """Temp tables ``bg_verified`` (image, its first split, class, source: one row per
    verification) and ``bg_v_images`` (image, split)."""
    pairs = ", ".join(f"({q(m)}, {i})" for m, i in negative_pairs(targets))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE bg_verified AS
        WITH tgt_neg(label_mid, class_idx) AS (VALUES {pairs}),
        rows AS (SELECT n.image_key, n.split_rank, t.class_idx, n.source
                 FROM {keyed("human_labels")} n JOIN tgt_neg t USING (label_mid)
                 ANTI JOIN bg_forbid USING (image_key)
                 WHERE n.confidence = 0 AND n.split IN {in_list(splits)})
        SELECT r.image_key, r.split_rank, r.class_idx, min(r.source) AS source
        FROM rows r JOIN (SELECT image_key, min(split_rank) AS split_rank FROM rows
                          GROUP BY image_key) f USING (image_key, split_rank)
        GROUP BY r.image_key, r.split_rank, r.class_idx""")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE bg_v_images AS "
        "SELECT DISTINCT image_key, split_rank FROM bg_verified"
    )


def _check_enough(
    con: duckdb.DuckDBPyConnection,
    sel: SelectSpec,
    targets: list[Target],
    wanted: Mapping[str, int],
    splits: tuple[str, ...],
) -> None:
    """``verified``: every split must have as many verified negatives as it wants."""
    found = dict(
        con.execute("SELECT split_rank, count(*) FROM bg_v_images GROUP BY split_rank").fetchall()
    )
    have = {s: int(found.get(SPLITS.index(s), 0)) for s in splits}
    if sel.negatives != "verified" or all(have[s] >= wanted[s] for s in splits):
        return
    names = [t.name for t in targets]
    raise NotEnoughNegativesError(names, have, dict(wanted), sel.negatives_ratio)


def _need_cte(wanted: Mapping[str, int], splits: tuple[str, ...]) -> str:
    rows = ", ".join(f"({SPLITS.index(s)}, {int(wanted[s])})" for s in splits) or "(NULL, 0)"
    return f"need(split_rank, n) AS (VALUES {rows})"


def _ranked(table: str, sel: SelectSpec) -> str:
    """``table``'s images, numbered per split in ``md5(image_id, seed)`` order."""
    seed = q(f":{sel.seed}:negatives")
    order = f"md5_number({_HEX.format('image_key')} || {seed}), image_key"
    return (
        f"SELECT image_key, split_rank, row_number() OVER (PARTITION BY split_rank "
        f"ORDER BY {order}) AS rn FROM {table}"
    )


def _random_sql(sel: SelectSpec, need: str) -> str:
    """Random photos of the image list, as many per split as the verified ones leave."""
    pool = (
        f"(SELECT image_key, split_rank FROM {keyed('images')} "
        "ANTI JOIN bg_forbid USING (image_key) ANTI JOIN bg_chosen_v USING (image_key) "
        f"WHERE split IN {in_list(sel.splits)})"
    )
    short = (
        "SELECT n.split_rank, n.n - coalesce(v.k, 0) AS n FROM need n LEFT JOIN "
        "(SELECT split_rank, count(*) AS k FROM bg_chosen_v GROUP BY split_rank) v "
        "USING (split_rank)"
    )
    return (
        f"WITH {need}, short AS ({short}) SELECT image_key, split_rank FROM "
        f"({_ranked(pool, sel)}) r JOIN short USING (split_rank) WHERE rn <= n"
    )


def _rows_sql(sel: SelectSpec, targets: list[Target]) -> str:
    """The rows of the chosen negatives, with their image columns."""
    names = ", ".join(f"({t.idx}, {q(t.mid)})" for t in targets)
    label = q(sel.negatives_name())
    nulls = ", ".join(f"NULL AS {c}" for c in BOX_COLS)
    splits = ", ".join(f"({i}, {q(s)})" for i, s in enumerate(SPLITS))
    verified = (
        "SELECT v.image_key, v.split_rank, o.out_mid AS label_mid, v.source, "
        "CAST(0 AS FLOAT) AS confidence FROM bg_verified v SEMI JOIN bg_chosen_v c "
        "USING (image_key) JOIN out_mids o USING (class_idx)"
    )
    rand = (
        f"SELECT image_key, split_rank, NULL AS label_mid, {q(RANDOM_SOURCE)} AS source, "
        "CAST(NULL AS FLOAT) AS confidence FROM bg_chosen_r"
    )
    cols = ", ".join(f"i.{c}" for c in IMAGE_COLS)
    return f"""
WITH out_mids(class_idx, out_mid) AS (VALUES {names}),
split_names(split_rank, split) AS (VALUES {splits}),
b AS ({verified} UNION ALL {rand})
SELECT {_HEX.format("b.image_key")} AS image_id, s.split, b.label_mid, {label} AS label_name,
       b.source, b.confidence, {q(BACKGROUND)} AS role, NULL AS box_index, {nulls}, {cols}
FROM b JOIN split_names s USING (split_rank)
LEFT JOIN (SELECT * FROM images WHERE image_id IN
           (SELECT {_HEX.format("image_key")} FROM b)) i
  ON i.image_id = {_HEX.format("b.image_key")} AND i.split = s.split
ORDER BY b.split_rank, b.image_key, b.label_mid NULLS LAST
"""
