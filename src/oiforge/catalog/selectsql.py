"""The SQL of ``select`` (see ``select.py`` for the steps). Every literal is quoted here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from oiforge.catalog.rowrules import BOX_COLS, COORDS, box_order, clamped, valid_box, valid_id
from oiforge.catalog.selcopy import COPY_KINDS, IMAGE_COLS, view_name
from oiforge.contracts import BOX_FLAGS, SPLITS
from oiforge.spec import SelectSpec

#: an ``image_key`` (UBIGINT) back to its ImageID text.
_HEX = "printf('%016x', {})"


@dataclass(frozen=True)
class Target:
    """A selected class: its index in the spec, MID, output name and the MIDs that count."""

    idx: int
    mid: str
    name: str
    mids: frozenset[str]


def q(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _in_list(values: Iterable[str]) -> str:
    items = sorted(set(values))
    return "(" + ", ".join(q(v) for v in items) + ")" if items else "(NULL)"


def target_map(targets: list[Target]) -> dict[str, int]:
    """Label MID -> spec index; a class named directly wins over one reached by expansion."""
    out: dict[str, int] = {}
    for t in targets:
        out.setdefault(t.mid, t.idx)
    direct = {t.mid for t in targets}
    for t in targets:
        for mid in sorted(t.mids - direct):
            out.setdefault(mid, t.idx)
    return out


def _targets_cte(targets: list[Target]) -> str:
    rows = ", ".join(f"({q(mid)}, {idx})" for mid, idx in sorted(target_map(targets).items()))
    return f"tgt(label_mid, class_idx) AS (VALUES {rows})"


def _flag_filter(sel: SelectSpec) -> str:
    parts = []
    for flag in BOX_FLAGS:
        rule = getattr(sel.box_flags, flag)
        if rule == "drop":
            parts.append(f"coalesce(b.{flag}, 0) <> 1")
        elif rule == "only":
            parts.append(f"b.{flag} = 1")
    return " AND ".join(parts) or "true"


def _keyed(table: str) -> str:
    """A plain table as the selection reads it: valid ImageIDs, ``image_key``, ``split_rank``."""
    return (
        f"(SELECT *, TRY_CAST('0x' || image_id AS UBIGINT) AS image_key, "
        f"{_split_rank()} AS split_rank, CAST(NULL AS BIGINT) AS ref "
        f"FROM {table} WHERE {valid_id('image_id')})"
    )


def _source(kind: str, copies: bool) -> str:
    return view_name(kind) if copies and kind in COPY_KINDS else _keyed(kind)


def _candidates(sel: SelectSpec, mids: str, splits: str, machine: bool, copies: bool) -> str:
    keys = "image_key, split, split_rank, ref, label_mid, source, confidence"
    if sel.label_mode == "box":
        where = f"b.label_mid IN {mids} AND b.split IN {splits} AND {_flag_filter(sel)}"
        if copies:  # the copy's boxes are valid and clamped; ``attach`` fetches them
            return f"SELECT {keys}, 0 AS pri FROM {_source('boxes', copies)} b WHERE {where}"
        coords = ", ".join(f"{clamped('b.' + c)} AS {c}" for c in COORDS)
        flags = ", ".join(f"b.{c}" for c in BOX_FLAGS)
        return (
            f"SELECT {keys}, {coords}, {flags}, 0 AS pri FROM {_source('boxes', copies)} b "
            f"WHERE {where} AND {valid_box('b')}"
        )
    nulls = ", ".join(f"NULL AS {c}" for c in BOX_COLS)
    human = (
        f"SELECT {keys}, {nulls}, 0 AS pri FROM {_source('human_labels', copies)} "
        f"WHERE label_mid IN {mids} AND split IN {splits} AND confidence = 1"
    )
    if sel.min_confidence is None or not machine:
        return human
    return (
        f"{human} UNION ALL SELECT {keys}, {nulls}, 1 AS pri FROM {_keyed('machine_labels')} "
        f"WHERE label_mid IN {mids} AND split IN {splits} "
        f"AND confidence >= {float(sel.min_confidence)!r}"
    )


def _split_rank() -> str:
    whens = " ".join(f"WHEN {q(s)} THEN {i}" for i, s in enumerate(SPLITS))
    return f"CASE split {whens} ELSE 99 END"


def _exclusion(excluded: frozenset[str], splits: str, copies: bool) -> str:
    """CTE ``not_excluded``: drop images with an excluded class (positive label or box)."""
    if not excluded:
        return "not_excluded AS (SELECT * FROM dedup)"
    mids = _in_list(excluded)
    bad = (
        f"SELECT image_key FROM {_source('human_labels', copies)} WHERE label_mid IN {mids} "
        f"AND confidence = 1 AND split IN {splits} UNION SELECT image_key FROM "
        f"{_source('boxes', copies)} WHERE label_mid IN {mids} AND split IN {splits}"
    )
    return f"not_excluded AS (SELECT * FROM dedup ANTI JOIN ({bad}) x USING (image_key))"


def _one_split(sel: SelectSpec) -> str:
    """CTE ``one_split``: an image found in several splits keeps only its first split.

    Grouping finds the (rare) offenders cheaply; a window over every row would sort them all.
    """
    if len(set(sel.splits)) == 1:
        return "one_split AS (SELECT * FROM cand)"
    return (
        "split_fix AS (SELECT image_key, min(split_rank) AS keep_rank FROM cand "
        "GROUP BY image_key HAVING min(split_rank) <> max(split_rank)),\n"
        "one_split AS (SELECT c.* FROM cand c LEFT JOIN split_fix f USING (image_key) "
        "WHERE f.keep_rank IS NULL OR c.split_rank = f.keep_rank)"
    )


def _dedup(sel: SelectSpec) -> str:
    """CTE ``dedup``: image mode keeps one row per (image, class): human first, then confidence."""
    if sel.label_mode == "box":
        return "dedup AS (SELECT * FROM one_split)"
    best = (
        "struct_pack(source := source, confidence := confidence, label_mid := label_mid, "
        "ref := ref)"
    )
    nulls = ", ".join(f"NULL AS {c}" for c in BOX_COLS)
    return (
        f"dedup_g AS (SELECT image_key, class_idx, min(split) AS split, "
        f"min(split_rank) AS split_rank, arg_min({best}, (pri, -confidence, label_mid, source)) "
        f"AS b FROM one_split GROUP BY image_key, class_idx),\n"
        f"dedup AS (SELECT image_key, class_idx, split, split_rank, b.ref AS ref, "
        f"b.source AS source, b.confidence AS confidence, b.label_mid AS label_mid, {nulls} "
        f"FROM dedup_g)"
    )


def _multi_label(sel: SelectSpec) -> str:
    """CTE ``kept``: the ``multi_label`` rule for images that carry several selected classes."""
    if sel.multi_label == "multi":
        return "kept AS (SELECT * FROM not_excluded)"
    multi = (
        "multi AS (SELECT image_key, min(class_idx) AS first_idx FROM not_excluded "
        "GROUP BY image_key HAVING min(class_idx) <> max(class_idx)),\n"
    )
    if sel.multi_label == "drop":
        return f"{multi}kept AS (SELECT * FROM not_excluded ANTI JOIN multi USING (image_key))"
    return (
        f"{multi}kept AS (SELECT n.* FROM not_excluded n LEFT JOIN multi m USING (image_key) "
        "WHERE m.first_idx IS NULL OR n.class_idx = m.first_idx)"
    )


def _sampling(sel: SelectSpec) -> str:
    """CTE ``final``: the rows of the per-class image sample (all rows when unlimited)."""
    if sel.per_class is None and not sel.balanced:
        return "final AS (SELECT * FROM kept)"
    cap = str(sel.per_class) if sel.per_class is not None else "NULL"
    seed = q(f":{sel.seed}")
    ranked = (
        f"ranked AS (SELECT class_idx, image_key, row_number() OVER (PARTITION BY class_idx "
        f"ORDER BY md5_number({_HEX.format('image_key')} || {seed}), image_key) AS rn "
        f"FROM (SELECT DISTINCT class_idx, image_key FROM kept))"
    )
    limit = cap
    if sel.balanced:
        sizes = "SELECT count(*) AS n FROM ranked GROUP BY class_idx"
        limit = f"least(coalesce({cap}, 9223372036854775807), (SELECT min(n) FROM ({sizes})))"
    return (
        f"{ranked},\nchosen AS (SELECT class_idx, image_key FROM ranked WHERE rn <= {limit}),\n"
        "final AS (SELECT k.* FROM kept k SEMI JOIN chosen c "
        "ON k.class_idx = c.class_idx AND k.image_key = c.image_key)"
    )


def selection_sql(
    sel: SelectSpec,
    targets: list[Target],
    excluded: frozenset[str],
    machine: bool,
    copies: bool = False,
) -> str:
    """One query returning the selection rows (without ``spec_hash``).

    ``copies=False``: read the plain tables ``boxes``, ``human_labels``, ``machine_labels``,
    join ``images`` and return the rows in output order (PostgreSQL's pull uses this).
    ``copies=True``: read the selection copies (views ``sel_boxes``/``sel_human_labels``, see
    ``selcopy.py``) and return unordered rows of four integers: the sort keys ``class_idx``,
    ``split_rank``, ``image_key`` and ``ref`` (the row in a copy, whose order within an image
    is ``rowrules.box_order``): ``select`` orders them, numbers the boxes and fetches every other
    column by ``ref`` (only machine-label rows, which have no copy, get theirs here).
    """
    splits = _in_list(sel.splits)
    mids = _in_list(target_map(targets))
    names = ", ".join(f"({t.idx}, {q(t.mid)}, {q(t.name)})" for t in targets)
    cands = _candidates(sel, mids, splits, machine, copies)
    ctes = [
        _targets_cte(targets),
        f"out_names(class_idx, out_mid, out_name) AS (VALUES {names})",
        f"cand AS (SELECT c.*, t.class_idx FROM ({cands}) c JOIN tgt t USING (label_mid))",
        _one_split(sel),
        _dedup(sel),
        _exclusion(excluded, splits, copies),
        _multi_label(sel),
        _sampling(sel),
        _numbered(sel, copies),
    ]
    with_clause = ",\n".join(ctes)
    boxes = ", ".join(f"k.{c}" for c in BOX_COLS)
    if copies:
        # only machine-label rows (no copy, no ``ref``) carry their own columns
        own = sel.label_mode == "image" and machine and sel.min_confidence is not None
        mine = (
            ", CASE WHEN k.ref IS NULL THEN k.source END AS source, "
            "CASE WHEN k.ref IS NULL THEN CAST(k.confidence AS FLOAT) END AS confidence, "
            + ", ".join(f"i.{c}" for c in IMAGE_COLS)
        )
        return f"""
WITH {with_clause}
SELECT k.class_idx, k.split_rank, k.image_key, k.ref{mine if own else ""}
FROM numbered k {_image_join() if own else ""}
"""
    return f"""
WITH {with_clause}
SELECT {_HEX.format("k.image_key")} AS image_id, k.split, o.out_mid AS label_mid,
       o.out_name AS label_name, k.source, CAST(k.confidence AS FLOAT) AS confidence,
       k.box_index, {boxes}, {", ".join(f"i.{c}" for c in IMAGE_COLS)}
FROM numbered k JOIN out_names o USING (class_idx)
{_image_join()}
ORDER BY k.class_idx, k.split_rank, k.image_key, k.box_index
"""


def _image_join() -> str:
    """Image metadata from the image list, for the rows that have no selection copy."""
    return (
        f"LEFT JOIN (SELECT * FROM images WHERE image_id IN (SELECT {_HEX.format('image_key')} "
        "FROM numbered WHERE ref IS NULL)) i "
        f"ON i.image_id = {_HEX.format('k.image_key')} AND i.split = k.split AND k.ref IS NULL"
    )


def _numbered(sel: SelectSpec, copies: bool) -> str:
    """CTE ``numbered``: ``box_index`` counts an image's selected boxes (0, 1, ...).

    The window runs on the narrow rows, before the wide image metadata is joined in; with
    ``copies`` ``select.order_rows`` numbers them instead (in Arrow, in ``ref`` order).
    """
    if sel.label_mode != "box" or copies:
        return "numbered AS (SELECT *, CAST(NULL AS INTEGER) AS box_index FROM final)"
    keys = ", ".join(("class_idx", *box_order()))
    return (
        "numbered AS (SELECT *, CAST(row_number() OVER "
        f"(PARTITION BY image_key ORDER BY {keys}) - 1 AS INTEGER) AS box_index FROM final)"
    )
