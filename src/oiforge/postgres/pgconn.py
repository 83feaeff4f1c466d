"""Connecting to PostgreSQL with errors that name the host, never the password."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict

from oiforge.errors import UserError


class PostgresError(UserError):
    """The PostgreSQL server cannot be reached or refused the work (names host, not password)."""


def describe_dsn(dsn: str) -> str:
    """``host:port/dbname`` of a DSN (URL or key=value), without user or password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
    port = str(parts.get("port") or 5432)
    return f"{host}:{port}/{parts.get('dbname') or ''}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def connect(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    """Open a connection; a bad DSN or a down server is a one-line :class:`PostgresError`."""
    where = describe_dsn(dsn)
    try:
        return psycopg.connect(dsn, connect_timeout=10)
    except psycopg.ProgrammingError as exc:
        raise PostgresError(f"invalid PostgreSQL DSN for {where}") from exc
    except psycopg.Error as exc:
        msg = _first_line(exc)
        for secret in _secrets(dsn):
            msg = msg.replace(secret, "***")
        raise PostgresError(f"cannot connect to PostgreSQL at {where}: {msg}") from exc


def _secrets(dsn: str) -> list[str]:
    try:
        pw = conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        return []
    return [str(pw)] if pw else []
