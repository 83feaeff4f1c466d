"""Load the catalog's DuckDB tables into PostgreSQL with COPY; idempotent (one transaction
drops and recreates the ``oiforge`` schema's tables, so a rerun replaces, never duplicates)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import duckdb
import psycopg

from oiforge.catalog import Catalog
from oiforge.postgres.pgconn import PostgresError, connect, describe_dsn

SCHEMA: Final = "oiforge"
TABLES: Final = ("classes", "hierarchy", "images", "human_labels", "machine_labels", "boxes")
_TYPES: Final = {
    "VARCHAR": "text",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "SMALLINT": "smallint",
    "TINYINT": "smallint",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "BOOLEAN": "boolean",
}
#: table -> (primary key columns or None, [index column lists]); dedup keeps PKs valid.
_KEYS: Final[dict[str, tuple[tuple[str, ...] | None, list[tuple[str, ...]]]]] = {
    "classes": (("label_mid",), []),
    "hierarchy": (None, [("parent_mid",), ("child_mid",)]),
    "images": (("image_id", "split"), []),
    "human_labels": (None, [("label_mid", "split", "image_id"), ("image_id",)]),
    "machine_labels": (None, [("label_mid", "split", "image_id"), ("image_id",)]),
    "boxes": (None, [("label_mid", "split", "image_id"), ("image_id",)]),
}

ProgressFn = Callable[[str, int], None]


@dataclass
class LoadResult:
    """Rows loaded per table (tables the catalog has not ingested are loaded empty)."""

    dsn_host: str
    rows: dict[str, int] = field(default_factory=dict)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    rows = con.sql(f"DESCRIBE SELECT * FROM {table}").fetchall()
    return [(str(r[0]), _TYPES.get(str(r[1]).upper(), "text")) for r in rows]


def _source_sql(table: str) -> str:
    pk = _KEYS[table][0]
    if pk is None:
        return f"SELECT * FROM {table}"
    part = ", ".join(pk)
    where = " AND ".join(f"{c} IS NOT NULL" for c in pk)
    return (
        f"SELECT * FROM {table} WHERE {where} QUALIFY row_number() OVER (PARTITION BY {part}) = 1"
    )


def _ddl(table: str, cols: list[tuple[str, str]]) -> list[str]:
    pk, indexes = _KEYS[table]
    defs = [f'"{c}" {t}' for c, t in cols]
    if pk is not None:
        defs.append(f"PRIMARY KEY ({', '.join(pk)})")
    out = [f"CREATE TABLE {SCHEMA}.{table} ({', '.join(defs)})"]
    return out + [
        f"CREATE INDEX ON {SCHEMA}.{table} ({', '.join(ix)})"
        for ix in indexes
        if all(c in dict(cols) for c in ix)
    ]


def _copy_table(
    pg: psycopg.Connection[tuple[object, ...]],
    con: duckdb.DuckDBPyConnection,
    table: str,
    tmp: Path,
) -> int:
    cols = _columns(con, table)
    csv = tmp / f"{table}.csv"
    src = _source_sql(table)
    con.execute(f"COPY ({src}) TO '{csv}' (FORMAT csv, HEADER false, NULL '\\N')")
    ddl = _ddl(table, cols)
    with pg.cursor() as cur:
        cur.execute(ddl[0])
        names = ", ".join(f'"{c}"' for c, _ in cols)
        sql = f"COPY {SCHEMA}.{table} ({names}) FROM STDIN (FORMAT csv, NULL '\\N')"
        with cur.copy(sql) as cp, csv.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                cp.write(chunk)
        for stmt in ddl[1:]:
            cur.execute(stmt)
        cur.execute(f"SELECT count(*) FROM {SCHEMA}.{table}")
        row = cur.fetchone()
    csv.unlink()
    return int(str(row[0])) if row else 0


def load_catalog(catalog: Catalog, dsn: str, progress: ProgressFn | None = None) -> LoadResult:
    """Copy classes, hierarchy, images, labels and boxes into schema ``oiforge`` at ``dsn``.

    Everything runs in one transaction: readers see the old tables or the new ones, never a mix.
    """
    result = LoadResult(describe_dsn(dsn))
    con = catalog.connection
    with connect(dsn) as pg, tempfile.TemporaryDirectory(prefix="oiforge-pg-") as tmp:
        try:
            with pg.transaction(), pg.cursor() as cur:
                cur.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
                cur.execute(f"CREATE SCHEMA {SCHEMA}")
                cur.execute(f"CREATE TABLE {SCHEMA}.meta (key text PRIMARY KEY, value text)")
                cur.execute(f"INSERT INTO {SCHEMA}.meta VALUES ('version', %s)", (catalog.version,))
                for table in TABLES:
                    result.rows[table] = _copy_table(pg, con, table, Path(tmp))
                    if progress is not None:
                        progress(table, result.rows[table])
        except psycopg.Error as exc:
            raise PostgresError(
                f"loading into PostgreSQL at {result.dsn_host} failed: {exc}"
            ) from exc
    return result
