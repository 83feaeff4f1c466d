"""A shared PostgreSQL copy of the catalog.

``load_catalog(catalog, dsn)`` loads it with COPY; ``select_pg(spec, dsn)`` selects from it.
"""

from oiforge.postgres.load import LoadResult, load_catalog
from oiforge.postgres.pgconn import PostgresError, connect, describe_dsn
from oiforge.postgres.select import select_pg

__all__ = ["LoadResult", "PostgresError", "connect", "describe_dsn", "load_catalog", "select_pg"]
