"""The catalog selection run against the PostgreSQL copy.

PostgreSQL does the filtering that touches the big tables (its indexes on ``label_mid, split``
and ``image_id``); the filtered rows land in an in-memory DuckDB and the *same* selection SQL as
``oiforge.catalog.select`` runs on them, so both back ends return identical rows by construction.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Final

import duckdb
import psycopg

from oiforge.catalog import open_catalog
from oiforge.catalog.select import expand_classes, resolve_targets, select_plain
from oiforge.catalog.selectsql import Target, target_map
from oiforge.contracts.selection import Selection
from oiforge.errors import SpecError
from oiforge.postgres.load import SCHEMA
from oiforge.postgres.pgconn import PostgresError, connect, describe_dsn
from oiforge.spec import DatasetSpec, SelectSpec

_BACK: Final = {
    "text": "VARCHAR",
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "smallint": "TINYINT",
    "real": "FLOAT",
    "double precision": "DOUBLE",
    "boolean": "BOOLEAN",
}
Pg = psycopg.Connection[tuple[object, ...]]


def _pg_columns(pg: Pg, table: str) -> list[tuple[str, str]]:
    rows = pg.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (SCHEMA, table),
    ).fetchall()
    if not rows:
        raise PostgresError(f"no {SCHEMA}.{table} table: run `oiforge pg load` first")
    return [(str(n), _BACK.get(str(t), "VARCHAR")) for n, t in rows]


def _pull(pg: Pg, duck: duckdb.DuckDBPyConnection, table: str, query: str, tmp: Path) -> None:
    cols = _pg_columns(pg, table)
    duck.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in cols)})")
    csv = tmp / f"{table}.csv"
    sql = f"COPY ({query}) TO STDOUT (FORMAT csv, NULL '\\N')"
    with pg.cursor() as cur, csv.open("wb") as fh, cur.copy(sql) as cp:
        for chunk in cp:
            fh.write(chunk)
    if csv.stat().st_size:
        opts = "FORMAT csv, HEADER false, NULL '\\N', DELIMITER ',', QUOTE '\"', AUTO_DETECT false"
        duck.execute(f"COPY {table} FROM '{csv}' ({opts})")


def _lit(values: list[str]) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def _filtered(mids: list[str], splits: tuple[str, ...]) -> dict[str, str]:
    """The rows the selection can touch: labels/boxes of its classes, and those images."""
    where = f"label_mid IN {_lit(mids)} AND split IN {_lit(list(splits))}"
    out = {k: f"SELECT * FROM {SCHEMA}.{k} WHERE {where}" for k in _LABELS}
    ids = " UNION ".join(f"SELECT image_id FROM {SCHEMA}.{k} WHERE {where}" for k in _LABELS)
    out["images"] = f"SELECT * FROM {SCHEMA}.images WHERE image_id IN ({ids})"
    return out


_LABELS: Final = ("human_labels", "machine_labels", "boxes")


def select_pg(spec: SelectSpec | DatasetSpec, dsn: str) -> Selection:
    """Run ``spec``'s selection against the catalog loaded into PostgreSQL at ``dsn``.

    Random negatives (``negatives: random|both``) draw from the whole image list, which this
    route does not pull: select those from the local catalog.
    """
    sel = spec.select if isinstance(spec, DatasetSpec) else spec
    if sel.negatives in ("random", "both"):
        raise SpecError(
            "random negatives draw from the whole image list: select them from the local "
            "catalog (without --catalog), or use --negatives verified"
        )
    with open_catalog(sel.version, fetch_missing=False) as cat:
        targets = resolve_targets(cat, sel)
        excluded = expand_classes(cat, sel.exclude_images_with)
    duck = duckdb.connect()
    try:
        with connect(dsn) as pg, tempfile.TemporaryDirectory(prefix="oiforge-pgsel-") as tmp:
            _check_version(pg, sel.version, describe_dsn(dsn))
            for table, query in _filtered(_mids(targets, excluded), sel.splits).items():
                _pull(pg, duck, table, query, Path(tmp))
        machine = _has_rows(duck, "machine_labels")
        return select_plain(duck, spec, targets, excluded, machine)
    except psycopg.Error as exc:
        raise PostgresError(f"selection at {describe_dsn(dsn)} failed: {exc}") from exc
    finally:
        duck.close()


def _mids(targets: list[Target], excluded: frozenset[str]) -> list[str]:
    """Every MID the selection reads: positives, negatives, families, excluded classes."""
    wanted = set(target_map(targets)) | excluded
    for t in targets:
        wanted |= t.mids | t.neg_mids | t.family
    return sorted(wanted)


def _has_rows(duck: duckdb.DuckDBPyConnection, table: str) -> bool:
    row = duck.sql(f"SELECT count(*) FROM {table}").fetchall()[0]
    return bool(row and row[0])


def _check_version(pg: Pg, version: str, where: str) -> None:
    try:
        row = pg.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'version'").fetchone()
    except psycopg.errors.UndefinedTable as exc:
        raise PostgresError(f"no oiforge catalog at {where}: run `oiforge pg load` first") from exc
    if row is None or row[0] != version:
        got = row[0] if row else None
        raise PostgresError(
            f"the PostgreSQL catalog at {where} is {got}, the spec asks for {version}"
        )
