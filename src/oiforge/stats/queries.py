"""The two DuckDB queries behind every statistic; all later work runs on their small results.

- :func:`confirmation_cube`: ONE pass over the machine labels of a split, LEFT JOINed to the
  human verifications of the same (image, label), aggregated to one row per (label, machine
  confidence in percent): machine labels, confirmed (human 1), rejected (human 0) and
  conflicting (both 1 and 0 given). At most ~100 rows per label, whatever the input size.
- :func:`positive_counts`: human-verified positive images per label, in the split and in all
  (:func:`sidecar_positive_counts` reads them from the ingest's per-file counts instead); both
  count with the catalog's :mod:`oiforge.catalog.counts`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from oiforge.catalog import sidecar_positives, sql_positives, sum_splits
from oiforge.contracts import SPLITS
from oiforge.errors import InvalidInputError

if TYPE_CHECKING:
    import duckdb

    from oiforge.catalog import Catalog

Progress = Callable[[float], None]
#: ``split`` may also be this: every split together.
ALL_SPLITS: Final = "all"

CUBE_SCHEMA: Final = pa.schema(
    [
        ("label_mid", pa.string()),
        ("conf_pct", pa.int16()),
        ("machine", pa.int64()),
        ("confirmed", pa.int64()),
        ("rejected", pa.int64()),
        ("conflicting", pa.int64()),
    ]
)
POSITIVES_SCHEMA: Final = pa.schema(
    [("label_mid", pa.string()), ("images", pa.int64()), ("images_all_splits", pa.int64())]
)


def check_split(split: str) -> str:
    """``split`` when it names a split (or ``all``), else an :class:`InvalidInputError`."""
    if split not in (*SPLITS, ALL_SPLITS):
        raise InvalidInputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)} or all")
    return split


def splits_of(split: str) -> tuple[str, ...]:
    """The splits ``split`` stands for."""
    return SPLITS if check_split(split) == ALL_SPLITS else (split,)


def _split_filter(split: str, alias: str = "") -> str:
    if check_split(split) == ALL_SPLITS:
        return "TRUE"
    return f"{alias}split = '{split}'"


def cube_sql(split: str) -> str:
    """The one-pass confirmation query (human verifications de-duplicated per pair)."""
    return f"""
    WITH h AS (
        SELECT image_id, label_mid, min(confidence) AS lo, max(confidence) AS hi
        FROM human_labels
        WHERE {_split_filter(split)} AND confidence IN (0, 1)
        GROUP BY image_id, label_mid
    )
    SELECT m.label_mid,
        CASE WHEN m.confidence BETWEEN 0 AND 1
             THEN CAST(round(m.confidence * 100) AS SMALLINT) END AS conf_pct,
        count(*) AS machine,
        count(*) FILTER (WHERE h.lo = 1) AS confirmed,
        count(*) FILTER (WHERE h.hi = 0) AS rejected,
        count(*) FILTER (WHERE h.lo = 0 AND h.hi = 1) AS conflicting
    FROM machine_labels m
    LEFT JOIN h ON m.image_id = h.image_id AND m.label_mid = h.label_mid
    WHERE {_split_filter(split, "m.")} AND m.label_mid IS NOT NULL
    GROUP BY ALL
    ORDER BY label_mid, conf_pct NULLS FIRST
    """


def confirmation_cube(
    con: duckdb.DuckDBPyConnection, split: str, progress: Progress | None = None
) -> pa.Table:
    """Run :func:`cube_sql` on a catalog connection (views ``human_labels``, ``machine_labels``);
    ``progress`` gets DuckDB's percent done a few times a second."""
    sql = cube_sql(split)
    table = _fetch(con, sql) if progress is None else _fetch_with_progress(con, sql, progress)
    return table.cast(CUBE_SCHEMA)


def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    return con.sql(sql).to_arrow_table()


def _fetch_with_progress(con: duckdb.DuckDBPyConnection, sql: str, progress: Progress) -> pa.Table:
    """Run ``sql`` in a thread and poll ``query_progress`` (tracking on, printing off)."""
    settings = ("enable_progress_bar", "enable_progress_bar_print")
    before = con.execute(f"SELECT {', '.join(f'current_setting({s!r})' for s in settings)}")
    before_values = before.fetchall()[0]
    con.execute("SET enable_progress_bar = true")
    con.execute("SET enable_progress_bar_print = false")
    done: dict[str, Any] = {}

    def work() -> None:
        try:
            done["table"] = _fetch(con, sql)
        except BaseException as exc:  # handed to the caller's thread below
            done["error"] = exc

    thread = threading.Thread(target=work, name="oiforge-stats-query", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.25)
            percent = con.query_progress()
            if percent >= 0:
                progress(percent)
    except BaseException:
        con.interrupt()
        thread.join()
        raise
    finally:
        for name, value in zip(settings, before_values, strict=True):
            con.execute(f"SET {name} = {bool(value)}")
    if "error" in done:
        raise done["error"]
    progress(100.0)
    return done["table"]


def positive_counts(con: duckdb.DuckDBPyConnection, split: str) -> pa.Table:
    """Human-verified positive images per label, in ``split`` and in all splits, counted on a
    connection with a ``human_labels`` view."""
    return _positives_table(sql_positives(con), split)


def sidecar_positive_counts(cat: Catalog, split: str) -> pa.Table | None:
    """The same counts from the per-file sidecars the catalog's ingest keeps, so no label row
    is read; None when a human-label file of the catalog has no sidecar."""
    found = sidecar_positives(cat)
    return None if found is None else _positives_table(found, split)


def _positives_table(per_split: dict[str, dict[str, int]], split: str) -> pa.Table:
    inside = sum_splits(per_split.get(s, {}) for s in splits_of(split))
    total = sum_splits(per_split.values())
    mids = sorted(total)
    columns = [mids, [inside.get(m, 0) for m in mids], [total[m] for m in mids]]
    return pa.table(columns, schema=POSITIVES_SCHEMA)


def machine_counts(cat: Catalog, split: str) -> tuple[list[str], list[int]]:
    """Machine labels per label in ``split`` (sorted MIDs, counts): from the ingest's per-file
    counts where every file has them, else one ``GROUP BY`` over the label column."""
    files = [
        i for i in cat.ingested.values()
        if i.kind == "machine_labels" and split in (ALL_SPLITS, i.split)
    ]  # fmt: skip
    counts: dict[str, int] = {}
    if all(i.counts is not None and i.counts.exists() for i in files):
        for f in files:
            data = pq.read_table(f.counts, columns=["label_mid", "n"]).to_pydict()
            for mid, n in zip(data["label_mid"], data["n"], strict=True):
                if mid is not None:
                    counts[mid] = counts.get(mid, 0) + int(n)
    else:
        sql = (
            f"SELECT label_mid, count(*) FROM machine_labels WHERE {_split_filter(split)} "
            "AND label_mid IS NOT NULL GROUP BY label_mid"
        )
        counts = {str(m): int(n) for m, n in cat.connection.execute(sql).fetchall()}
    mids = sorted(counts)
    return mids, [counts[m] for m in mids]
