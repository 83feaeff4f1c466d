"""The SQL of ``select`` (see ``select.py`` for the steps). Every literal is quoted here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from oiforge.contracts import BOX_FLAGS, SPLITS
from oiforge.spec import SelectSpec

_IMAGE_COLS = (
    "original_url",
    "landing_url",
    "thumbnail_url",
    "license",
    "author",
    "author_profile_url",
    "title",
    "original_size",
    "original_md5",
    "rotation",
)
_BOX_COLS = ("x_min", "x_max", "y_min", "y_max", *BOX_FLAGS)
#: rows a later stage could not use are left out: an ImageID is what becomes a file name, and
#: a box must have a positive area inside (a hair's breadth outside is clamped) the image.
_VALID_ID = "regexp_full_match({}, '[0-9a-f]{{16}}')"
_VALID_BOX = (
    "b.x_min < b.x_max AND b.y_min < b.y_max AND b.x_min >= -0.01 AND b.y_min >= -0.01 "
    "AND b.x_max <= 1.01 AND b.y_max <= 1.01"
)


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


def _candidates(sel: SelectSpec, mids: str, splits: str, machine: bool) -> str:
    if sel.label_mode == "box":
        coords = ", ".join(f"least(greatest(b.{c}, 0), 1) AS {c}" for c in _BOX_COLS[:4])
        flags = ", ".join(f"b.{c}" for c in BOX_FLAGS)
        return (
            f"SELECT b.image_id, b.split, b.label_mid, b.source, b.confidence, {coords}, {flags}, "
            f"0 AS pri FROM boxes b WHERE b.label_mid IN {mids} AND b.split IN {splits} "
            f"AND {_flag_filter(sel)} AND {_VALID_BOX} AND {_VALID_ID.format('b.image_id')}"
        )
    nulls = ", ".join(f"NULL AS {c}" for c in _BOX_COLS)
    human = (
        f"SELECT image_id, split, label_mid, source, confidence, {nulls}, 0 AS pri "
        f"FROM human_labels WHERE label_mid IN {mids} AND split IN {splits} AND confidence = 1 "
        f"AND {_VALID_ID.format('image_id')}"
    )
    if sel.min_confidence is None or not machine:
        return human
    return (
        f"{human} UNION ALL SELECT image_id, split, label_mid, source, confidence, {nulls}, "
        f"1 AS pri FROM machine_labels WHERE label_mid IN {mids} AND split IN {splits} "
        f"AND confidence >= {float(sel.min_confidence)!r} AND {_VALID_ID.format('image_id')}"
    )


def _split_rank() -> str:
    whens = " ".join(f"WHEN {q(s)} THEN {i}" for i, s in enumerate(SPLITS))
    return f"CASE split {whens} ELSE 99 END"


def _exclusion(excluded: frozenset[str], splits: str) -> str:
    """CTE ``not_excluded``: drop images with an excluded class (positive label or box)."""
    if not excluded:
        return "not_excluded AS (SELECT * FROM dedup)"
    mids = _in_list(excluded)
    bad = (
        f"SELECT image_id FROM human_labels WHERE label_mid IN {mids} AND confidence = 1 "
        f"AND split IN {splits} UNION SELECT image_id FROM boxes WHERE label_mid IN {mids} "
        f"AND split IN {splits}"
    )
    return f"not_excluded AS (SELECT * FROM dedup ANTI JOIN ({bad}) x USING (image_id))"


def _one_split() -> str:
    """CTE ``one_split``: an image found in several splits keeps only its first split.

    Grouping finds the (rare) offenders cheaply; a window over every row would sort them all.
    """
    return (
        "split_fix AS (SELECT image_id, min(split_rank) AS keep_rank FROM cand GROUP BY image_id "
        "HAVING min(split_rank) <> max(split_rank)),\n"
        "one_split AS (SELECT c.* FROM cand c LEFT JOIN split_fix f USING (image_id) "
        "WHERE f.keep_rank IS NULL OR c.split_rank = f.keep_rank)"
    )


def _dedup(sel: SelectSpec) -> str:
    """CTE ``dedup``: image mode keeps one row per (image, class): human first, then confidence."""
    if sel.label_mode == "box":
        return "dedup AS (SELECT * FROM one_split)"
    best = "struct_pack(source := source, confidence := confidence, label_mid := label_mid)"
    nulls = ", ".join(f"NULL AS {c}" for c in _BOX_COLS)
    return (
        f"dedup_g AS (SELECT image_id, class_idx, min(split) AS split, "
        f"min(split_rank) AS split_rank, arg_min({best}, (pri, -confidence, label_mid, source)) "
        f"AS b FROM one_split GROUP BY image_id, class_idx),\n"
        f"dedup AS (SELECT image_id, class_idx, split, split_rank, b.source AS source, "
        f"b.confidence AS confidence, b.label_mid AS label_mid, {nulls} FROM dedup_g)"
    )


def _multi_label(sel: SelectSpec) -> str:
    """CTE ``kept``: the ``multi_label`` rule for images that carry several selected classes."""
    if sel.multi_label == "multi":
        return "kept AS (SELECT * FROM not_excluded)"
    multi = (
        "multi AS (SELECT image_id, min(class_idx) AS first_idx FROM not_excluded "
        "GROUP BY image_id HAVING min(class_idx) <> max(class_idx)),\n"
    )
    if sel.multi_label == "drop":
        return f"{multi}kept AS (SELECT * FROM not_excluded ANTI JOIN multi USING (image_id))"
    return (
        f"{multi}kept AS (SELECT n.* FROM not_excluded n LEFT JOIN multi m USING (image_id) "
        "WHERE m.first_idx IS NULL OR n.class_idx = m.first_idx)"
    )


def _sampling(sel: SelectSpec) -> str:
    """CTE ``final``: the rows of the per-class image sample (all rows when unlimited)."""
    if sel.per_class is None and not sel.balanced:
        return "final AS (SELECT * FROM kept)"
    cap = str(sel.per_class) if sel.per_class is not None else "NULL"
    seed = q(f":{sel.seed}")
    ranked = (
        f"ranked AS (SELECT class_idx, image_id, row_number() OVER (PARTITION BY class_idx "
        f"ORDER BY md5_number(image_id || {seed}), image_id) AS rn "
        f"FROM (SELECT DISTINCT class_idx, image_id FROM kept))"
    )
    limit = cap
    if sel.balanced:
        sizes = "SELECT count(*) AS n FROM ranked GROUP BY class_idx"
        limit = f"least(coalesce({cap}, 9223372036854775807), (SELECT min(n) FROM ({sizes})))"
    return (
        f"{ranked},\nchosen AS (SELECT class_idx, image_id FROM ranked WHERE rn <= {limit}),\n"
        "final AS (SELECT k.* FROM kept k SEMI JOIN chosen c "
        "ON k.class_idx = c.class_idx AND k.image_id = c.image_id)"
    )


def selection_sql(
    sel: SelectSpec, targets: list[Target], excluded: frozenset[str], machine: bool
) -> str:
    """One query returning the selection rows (without ``spec_hash``/``box_index``), unordered;
    ``order_rows`` numbers the boxes and sorts (in Arrow: cheaper than SQL windows)."""
    splits = _in_list(sel.splits)
    mids = _in_list(target_map(targets))
    names = ", ".join(f"({t.idx}, {q(t.mid)}, {q(t.name)})" for t in targets)
    ctes = [
        _targets_cte(targets),
        f"out_names(class_idx, out_mid, out_name) AS (VALUES {names})",
        f"cand AS (SELECT c.*, t.class_idx, {_split_rank()} AS split_rank "
        f"FROM ({_candidates(sel, mids, splits, machine)}) c JOIN tgt t USING (label_mid))",
        _one_split(),
        _dedup(sel),
        _exclusion(excluded, splits),
        _multi_label(sel),
        _sampling(sel),
    ]
    ctes.append(_numbered(sel))
    with_clause = ",\n".join(ctes)
    return f"""
WITH {with_clause}
SELECT k.image_id, k.split, o.out_mid AS label_mid, o.out_name AS label_name, k.source,
       CAST(k.confidence AS FLOAT) AS confidence, k.box_index,
       {", ".join(f"k.{c}" for c in _BOX_COLS)},
       {", ".join(f"i.{c}" for c in _IMAGE_COLS)}
FROM numbered k JOIN out_names o USING (class_idx)
LEFT JOIN (SELECT * FROM images WHERE image_id IN (SELECT image_id FROM numbered)) i
       ON i.image_id = k.image_id AND i.split = k.split
ORDER BY k.class_idx, k.split_rank, k.image_id, k.box_index
"""


def _numbered(sel: SelectSpec) -> str:
    """CTE ``numbered``: ``box_index`` counts an image's selected boxes (0, 1, ...).

    The window runs on the narrow rows, before the wide image metadata is joined in.
    """
    if sel.label_mode != "box":
        return "numbered AS (SELECT *, CAST(NULL AS INTEGER) AS box_index FROM final)"
    keys = ", ".join(("class_idx", *_BOX_COLS, "source", "label_mid"))
    return (
        "numbered AS (SELECT *, CAST(row_number() OVER "
        f"(PARTITION BY image_id ORDER BY {keys}) - 1 AS INTEGER) AS box_index FROM final)"
    )
