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
        boxes = ", ".join(f"b.{c}" for c in _BOX_COLS)
        return (
            f"SELECT b.image_id, b.split, b.label_mid, b.source, b.confidence, {boxes}, 0 AS pri "
            f"FROM boxes b WHERE b.label_mid IN {mids} AND b.split IN {splits} "
            f"AND {_flag_filter(sel)}"
        )
    nulls = ", ".join(f"NULL AS {c}" for c in _BOX_COLS)
    human = (
        f"SELECT image_id, split, label_mid, source, confidence, {nulls}, 0 AS pri "
        f"FROM human_labels WHERE label_mid IN {mids} AND split IN {splits} AND confidence = 1"
    )
    if sel.min_confidence is None or not machine:
        return human
    return (
        f"{human} UNION ALL SELECT image_id, split, label_mid, source, confidence, {nulls}, "
        f"1 AS pri FROM machine_labels WHERE label_mid IN {mids} AND split IN {splits} "
        f"AND confidence >= {float(sel.min_confidence)!r}"
    )


def _split_rank() -> str:
    whens = " ".join(f"WHEN {q(s)} THEN {i}" for i, s in enumerate(SPLITS))
    return f"CASE split {whens} ELSE 99 END"


def _exclusion(excluded: frozenset[str], splits: str) -> str:
    if not excluded:
        return "SELECT NULL::VARCHAR AS image_id WHERE false"
    mids = _in_list(excluded)
    return (
        f"SELECT image_id FROM human_labels WHERE label_mid IN {mids} AND confidence = 1 "
        f"AND split IN {splits} UNION SELECT image_id FROM boxes WHERE label_mid IN {mids} "
        f"AND split IN {splits}"
    )


def _multi_label(sel: SelectSpec) -> str:
    if sel.multi_label == "drop":
        return "QUALIFY count(DISTINCT class_idx) OVER (PARTITION BY image_id) = 1"
    if sel.multi_label == "keep-first":
        return "QUALIFY class_idx = min(class_idx) OVER (PARTITION BY image_id)"
    return ""


def _sampling(sel: SelectSpec, n_targets: int) -> str:
    """CTE ``chosen(class_idx, image_id)``: the per-class image sample."""
    pairs = "SELECT DISTINCT class_idx, image_id FROM kept"
    if sel.per_class is None and not sel.balanced:
        return f"chosen AS ({pairs})"
    cap = str(sel.per_class) if sel.per_class is not None else "NULL"
    seed = q(f":{sel.seed}")
    ranked = (
        f"ranked AS (SELECT class_idx, image_id, row_number() OVER (PARTITION BY class_idx "
        f"ORDER BY md5_number(image_id || {seed}), image_id) AS rn FROM ({pairs}))"
    )
    if sel.balanced:
        sizes = "SELECT count(*) AS n FROM ranked GROUP BY class_idx"
        limit = f"least(coalesce({cap}, 9223372036854775807), (SELECT min(n) FROM ({sizes})))"
    else:
        limit = cap
    del n_targets
    return f"{ranked}, chosen AS (SELECT class_idx, image_id FROM ranked WHERE rn <= {limit})"


def selection_sql(
    sel: SelectSpec, targets: list[Target], excluded: frozenset[str], machine: bool
) -> str:
    """One query returning the selection rows (without ``spec_hash``), in a stable order."""
    splits = _in_list(sel.splits)
    mids = _in_list(target_map(targets))
    names = ", ".join(f"({t.idx}, {q(t.mid)}, {q(t.name)})" for t in targets)
    box_index = (
        "CAST(row_number() OVER (PARTITION BY k.image_id ORDER BY k.class_idx, k.x_min, k.y_min, "
        "k.x_max, k.y_max, k.source) - 1 AS INTEGER)"
        if sel.label_mode == "box"
        else "CAST(NULL AS INTEGER)"
    )
    return f"""
WITH {_targets_cte(targets)},
out_names(class_idx, out_mid, out_name) AS (VALUES {names}),
cand AS (SELECT c.*, t.class_idx, {_split_rank()} AS split_rank
         FROM ({_candidates(sel, mids, splits, machine)}) c JOIN tgt t USING (label_mid)),
one_split AS (SELECT * FROM cand QUALIFY split_rank = min(split_rank) OVER (PARTITION BY image_id)),
dedup AS (SELECT * FROM one_split
          {_dedup_clause(sel)}),
not_excluded AS (SELECT * FROM dedup ANTI JOIN ({_exclusion(excluded, splits)}) x USING (image_id)),
kept AS (SELECT * FROM not_excluded {_multi_label(sel)}),
{_sampling(sel, len(targets))},
final AS (SELECT k.* FROM kept k JOIN chosen USING (class_idx, image_id)),
img AS (SELECT * FROM images WHERE image_id IN (SELECT image_id FROM final)
        QUALIFY row_number() OVER (PARTITION BY image_id ORDER BY split) = 1)
SELECT k.image_id, k.split, o.out_mid AS label_mid, o.out_name AS label_name, k.source,
       CAST(k.confidence AS FLOAT) AS confidence, {box_index} AS box_index,
       {", ".join(f"k.{c}" for c in _BOX_COLS)},
       {", ".join(f"i.{c}" for c in _IMAGE_COLS)}
FROM final k JOIN out_names o USING (class_idx) LEFT JOIN img i USING (image_id)
ORDER BY k.class_idx, k.split_rank, k.image_id, box_index NULLS FIRST, k.label_mid
"""


def _dedup_clause(sel: SelectSpec) -> str:
    """Image mode: one row per (image, class), human before machine, higher confidence first."""
    if sel.label_mode == "box":
        return ""
    return (
        "QUALIFY row_number() OVER (PARTITION BY image_id, class_idx "
        "ORDER BY pri, confidence DESC, label_mid, source) = 1"
    )
