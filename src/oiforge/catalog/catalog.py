"""The catalog of one Open Images version: classes, hierarchy and DuckDB views of the metadata.

``open_catalog("v7")`` works offline for classes and the hierarchy (package data); the label,
box and image tables are fetched on demand (``fetch_missing``), ingested to Parquet once, and
exposed as DuckDB views ``classes``, ``images``, ``human_labels``, ``machine_labels``,
``boxes`` and ``hierarchy`` on :attr:`Catalog.connection`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa

from oiforge.atomic import fsync_path, write_text_atomic
from oiforge.catalog.classes import (
    CatalogClass,
    ClassMatch,
    ClassTable,
    Hierarchy,
    LazyAliases,
    TreeNode,
    build_aliases,
    parse_class_csv,
    parse_hierarchy,
)
from oiforge.catalog.fetch import ProgressFn, cached_path, fetch_file
from oiforge.catalog.files import OfficialFile, official_files
from oiforge.catalog.ingest import COLUMNS, TABLE_KINDS, Ingested, ingest
from oiforge.contracts import SPLITS
from oiforge.endpoints import Endpoints
from oiforge.errors import FetchError, MalformedFileError, StageError
from oiforge.paths import oiforge_home, package_data

log = logging.getLogger(__name__)

#: official relpath -> file shipped in ``oiforge/data/openimages`` (byte-identical copies).
PACKAGED: Final = {
    "v7/oidv7-class-descriptions.csv": "oidv7-class-descriptions.csv",
    "v7/oidv7-class-descriptions-boxable.csv": "oidv7-class-descriptions-boxable.csv",
    "v6/oidv6-class-descriptions.csv": "oidv6-class-descriptions.csv",
    "v5/class-descriptions-boxable.csv": "class-descriptions-boxable.csv",
    "2018_04/bbox_labels_600_hierarchy.json": "bbox_labels_600_hierarchy.json",
}
#: offline stand-ins (same MIDs; a few display names differ) when the real file cannot be had.
STAND_INS: Final = {
    "v5/class-descriptions.csv": "oidv6-class-descriptions.csv",
    "2018_04/class-descriptions.csv": "oidv6-class-descriptions.csv",
    "2018_04/class-descriptions-boxable.csv": "class-descriptions-boxable.csv",
    **{
        f"{d}/class-descriptions.csv": "oidv6-class-descriptions.csv"
        for d in ("2017_07", "2017_11")
    },
    **{f"{d}/classes-bbox.txt": "class-descriptions-boxable.csv" for d in ("2017_07", "2017_11")},
    "2016_08/dict.csv": "oidv6-class-descriptions.csv",  # v1: same MIDs, names not lower-cased
}


class Catalog:
    """Classes, hierarchy and metadata tables of one version (see the module docstring)."""

    def __init__(
        self,
        version: str,
        classes: ClassTable,
        hierarchy: Hierarchy,
        endpoints: Endpoints,
        home: Path,
        fetch_missing: bool,
        sources: str | None = None,
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> None:
        """``sources``: names the files the classes and hierarchy come from (``_sources``),
        so their tables' kept copies are found without hashing the tables (None: hashed).
        ``con``: a new in-memory DuckDB connection for this catalog (None: one is made)."""
        self.version = version
        self.classes = classes
        self.hierarchy = hierarchy
        self.endpoints = endpoints
        self.home = home
        self.fetch_missing = fetch_missing
        self.ingested: dict[str, Ingested] = {}
        self._views: dict[str, str] = {}  # the SQL of each table view as last created
        self._views_due = True  # the table views are (re)made on ``connection``'s next use
        self._con = con if con is not None else duckdb.connect()
        with contextlib.suppress(duckdb.InvalidInputException):  # Jupyter without ipywidgets
            self._con.execute("SET enable_progress_bar = false")  # only cli/ prints
        # a view's bind and its query parse each Parquet footer once, not twice (a selection
        # copy's is ~2 MB at full size); off again once this catalog writes a file
        # (``ingest.files_change``)
        self._con.execute("SET parquet_metadata_cache = true")
        _small_table(self._con, "classes", lambda: _classes_columns(classes), home, sources)
        _small_table(self._con, "hierarchy", lambda: _hierarchy_columns(hierarchy), home, sources)

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The catalog's DuckDB connection, its table views current."""
        if self._views_due:
            self._refresh_views()
        return self._con

    def file_connection(self) -> duckdb.DuckDBPyConnection:
        """The same connection for queries that read only files they name (the selection
        copies, the keyed image lists) and the ``classes``/``hierarchy`` tables: the table
        views are not (re)made for it (binding them reads every table file's Parquet footer,
        ~20 ms at full size, a tenth of a typical ``select``)."""
        return self._con

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- classes and hierarchy ------------------------------------------------------------
    def resolve(self, name_or_mid: str) -> CatalogClass:
        """A class by MID, display name (case-insensitive) or a name from another version."""
        return self.classes.resolve(name_or_mid)

    def search(self, query: str, limit: int = 20, boxable_only: bool = False) -> list[ClassMatch]:
        return self.classes.search(query, limit, boxable_only)

    def subtree(self, mid: str, parts: bool = False, depth: int | None = None) -> TreeNode:
        return self.hierarchy.subtree(self.resolve(mid).mid, parts, depth)

    def descendants(self, mid: str) -> set[str]:
        return self.hierarchy.descendants(self.resolve(mid).mid)

    def ancestors(self, mid: str) -> set[str]:
        return self.hierarchy.ancestors(self.resolve(mid).mid)

    def parents(self, mid: str) -> list[str]:
        return self.hierarchy.parents(self.resolve(mid).mid)

    def name(self, mid: str) -> str:
        """Display name of a MID (the MID itself when no class list has it)."""
        return self.classes.info(mid).name if mid in self.classes else mid

    # -- metadata tables ------------------------------------------------------------------
    def ensure(
        self,
        kinds: Iterable[str],
        splits: Iterable[str] = SPLITS,
        progress: ProgressFn | None = None,
    ) -> None:
        """Make sure the tables of ``kinds`` x ``splits`` are fetched, ingested and in views."""
        files = official_files(self.version, tuple(kinds), tuple(splits))
        for f in files:
            if f.relpath not in self.ingested:
                self._ingest(f, self._local_file(f, progress))
        self._views_due = True

    def ingest_cached(self, strict: bool = True) -> None:
        """Ingest every table file of this version already in the cache (cheap when current).

        With ``strict=False`` a malformed file is logged and left out (``ensure`` raises it
        later if a query needs it), so class search works beside a broken download.
        """
        for f in official_files(self.version, TABLE_KINDS):
            path = cached_path(f, self.home)
            if path.exists() and f.relpath not in self.ingested:
                try:
                    self._ingest(f, path)
                except MalformedFileError as exc:
                    if strict:
                        raise
                    log.warning("left out of the catalog: %s", exc)
        self._views_due = True

    def _local_file(self, f: OfficialFile, progress: ProgressFn | None) -> Path:
        path = cached_path(f, self.home)
        if path.exists():
            return path
        if not self.fetch_missing:
            raise StageError(
                f"{f.relpath} is not in the cache; run `oiforge catalog fetch --version "
                f"{self.version} --kinds {f.kind}` (or open the catalog with fetch_missing)"
            )
        return fetch_file(f, self.endpoints, self.home, progress).path

    def _ingest(self, f: OfficialFile, path: Path) -> None:
        self.ingested[f.relpath] = ingest(self._con, f, path, self.home)

    def _refresh_views(self) -> None:
        """(Re)create the table views whose files changed (creating one reads the footers of
        its Parquet files: ~5 ms for them all at full size)."""
        for kind in TABLE_KINDS:
            paths = [i.parquet for i in self.ingested.values() if i.kind == kind]
            sql = _view_sql(kind, paths)
            if self._views.get(kind) != sql:
                self._con.execute(f"CREATE OR REPLACE VIEW {kind} AS {sql}")
                self._views[kind] = sql
        self._views_due = False

    def has_table(self, kind: str, splits: Iterable[str] = SPLITS) -> bool:
        wanted = set(splits)
        return any(i.kind == kind and i.split in wanted for i in self.ingested.values())

    def class_counts(self, mids: Iterable[str] | None = None) -> pa.Table:
        """Per class: human-verified positives and boxes per split (0 where not ingested)."""
        from oiforge.catalog.counts import class_counts

        return class_counts(self, None if mids is None else list(mids))


def _view_sql(kind: str, paths: list[Path]) -> str:
    if paths:
        listed = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
        return f"SELECT * FROM read_parquet([{listed}])"
    cols = ", ".join(f"CAST(NULL AS {typ}) AS {ours}" for _, ours, typ in COLUMNS[kind])
    return f"SELECT {cols}, CAST(NULL AS VARCHAR) AS split WHERE false"


def _create_table(con: duckdb.DuckDBPyConnection, name: str, cols: dict[str, list[Any]]) -> None:
    """A table from Python lists (``register`` of Arrow would import pandas: ~1 s)."""
    names = list(cols)
    select = ", ".join(f"unnest(${i + 1}) AS {n}" for i, n in enumerate(names))
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT {select}", [cols[n] for n in names])


def _small_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    columns: Callable[[], dict[str, list[Any]]],
    home: Path,
    sources: str | None,
) -> None:
    """``name`` as a view of a Parquet copy kept under ``home`` (written on first open: a view
    costs nothing until queried, a 20k-row table ~40 ms per open); a table if home is read-only.

    The copy is named by ``sources`` (the files the table comes from), else by a hash of the
    table (~15 ms for 20,000 classes, at every open).
    """
    cols = None if sources is not None else columns()
    text = sources if sources is not None else json.dumps(cols, ensure_ascii=False)
    key = hashlib.sha256(text.encode()).hexdigest()[:32]
    path = home / "parsed" / f"{name}-{key}.parquet"
    if not path.is_file():
        _create_table(con, name, cols if cols is not None else columns())
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY {name} TO '{_sql_path(tmp)}' (FORMAT parquet)")
            fsync_path(tmp)  # never a torn copy behind the view after a crash
            tmp.replace(path)
        except (OSError, duckdb.Error):
            with contextlib.suppress(OSError):
                tmp.unlink()
            return  # the table stays
        con.execute(f"DROP TABLE {name}")
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet('{_sql_path(path)}')")


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _classes_columns(classes: ClassTable) -> dict[str, list[Any]]:
    mids = list(classes.names)
    return {
        "label_mid": mids,
        "label_name": [classes.names[m] for m in mids],
        "boxable": [m in classes.boxable for m in mids],
    }


def _hierarchy_columns(h: Hierarchy) -> dict[str, list[Any]]:
    return {
        "parent_mid": [p for p, _, _ in h.links],
        "child_mid": [c for _, c, _ in h.links],
        "kind": [k for _, _, k in h.links],
    }


def open_catalog(
    version: str = "v7",
    endpoints: Endpoints | None = None,
    home: Path | str | None = None,
    fetch_missing: bool = True,
) -> Catalog:
    """Open the catalog of ``version``; classes and hierarchy work offline.

    DuckDB connects on a thread meanwhile: ``duckdb.connect`` takes ~20 ms and releases
    the GIL, the class list and hierarchy are Python work of about as long."""
    with ThreadPoolExecutor(1) as pool:
        connecting = pool.submit(duckdb.connect)
        try:
            parts = _catalog_parts(version, endpoints, home, fetch_missing)
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                connecting.result().close()
            raise
        cat = Catalog(*parts, con=connecting.result())
    cat.ingest_cached(strict=False)
    return cat


def _catalog_parts(
    version: str, endpoints: Endpoints | None, home: Path | str | None, fetch_missing: bool
) -> tuple[str, ClassTable, Hierarchy, Endpoints, Path, bool, str]:
    """What a :class:`Catalog` is made of but its DuckDB connection (see ``open_catalog``)."""
    files = official_files(version)
    ep = endpoints or Endpoints.from_env()
    root = Path(home) if home is not None else oiforge_home()
    by_kind = {f.kind: f for f in files if f.split is None}
    text = _SourceReader(ep, root, fetch_missing)
    boxable = by_kind.get("class_descriptions_boxable")  # v1 has no boxes
    boxable_path = text.read(boxable) if boxable else None
    boxable_rows = _parse_path(boxable_path, root) if boxable_path else ((), ())
    all_rows = text.read_optional(by_kind["class_descriptions"])
    if all_rows is None:
        log.warning("no full class list for %s; using the boxable classes only", version)
    mids, labels = _parse_path(all_rows, root) if all_rows else boxable_rows
    names = dict(zip(mids, labels, strict=True))
    names.update((m, n) for m, n in zip(*boxable_rows, strict=True) if m not in names)
    aliases = LazyAliases(lambda: build_aliases(names, _packaged_lists(root)))
    table = ClassTable(version, names, frozenset(boxable_rows[0]), aliases)
    tree_path = text.read(by_kind["hierarchy"])
    hierarchy = parse_hierarchy(_read_text(tree_path), str(tree_path))
    sources = _sources([boxable_path, all_rows, tree_path])
    return version, table, hierarchy, ep, root, fetch_missing, sources


#: bump when the classes or hierarchy table made from the same files changes (their kept
#: copies are named by those files: ``_sources``)
_TABLES_FORMAT: Final = 1


def _sources(paths: list[Path | None]) -> str:
    """The files the classes and hierarchy tables come from, as path, size and mtime each
    (the rule of the parsed class lists: ``_parse_cached``)."""
    parts = [f"tables {_TABLES_FORMAT}"]
    for path in paths:
        st = path.stat() if path is not None else None
        parts.append(f"{path}\0{st.st_size}\0{st.st_mtime_ns}" if st is not None else "-")
    return "\n".join(parts)


class _SourceReader:
    """Reads a small official file: the cache, else package data, else a fetch."""

    def __init__(self, endpoints: Endpoints, home: Path, fetch_missing: bool) -> None:
        self.endpoints, self.home, self.fetch_missing = endpoints, home, fetch_missing

    def read(self, f: OfficialFile) -> Path:
        found = self.read_optional(f)
        if found is None:
            raise StageError(
                f"{f.relpath} is neither shipped nor cached; run `oiforge catalog fetch "
                f"--version {f.version} --kinds {f.kind}`"
            )
        return found

    def read_optional(self, f: OfficialFile) -> Path | None:
        cached = cached_path(f, self.home)
        if cached.exists():
            return cached
        if f.relpath in PACKAGED:
            return package_data("openimages", PACKAGED[f.relpath])
        if self.fetch_missing:
            try:
                return fetch_file(f, self.endpoints, self.home).path
            except FetchError as exc:
                log.warning("%s", exc)
        if f.relpath in STAND_INS:
            path = package_data("openimages", STAND_INS[f.relpath])
            log.warning("%s not available; using %s (names may differ)", f.relpath, path.name)
            return path
        return None


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8-sig", errors="replace")


def _packaged_lists(home: Path) -> list[Iterable[tuple[str, str]]]:
    out: list[Iterable[tuple[str, str]]] = []
    for rel, name in PACKAGED.items():
        if rel.endswith(".csv"):
            mids, names = _parse_path(package_data("openimages", name), home)
            out.append(zip(mids, names, strict=True))
    return out


#: a class list as parallel tuples (MIDs, names), in file order: two containers, not one per
#: row (20,000 row tuples cost a full garbage collection on every open)
ClassRows = tuple[tuple[str, ...], tuple[str, ...]]


def _parse_path(path: Path, home: Path) -> ClassRows:
    return _parse_cached(str(path), path.stat().st_mtime_ns, str(home))


#: Parsed class lists kept beside the cache (JSON ``[mids, names]``): a 20,000-row list parses
#: in ~0.1 s, loads in ~0.01 s. Keyed by the file's path, size and mtime; bump to drop old
#: entries (format 2: two lists, format 1 was a list of pairs).
_PARSED_FORMAT: Final = 2


@functools.lru_cache(maxsize=16)
def _parse_cached(path: str, mtime_ns: int, home: str) -> ClassRows:
    """Parsed class list, memoized per file version (in the process and on disk)."""
    size = os.stat(path).st_size  # noqa: PTH116
    key = hashlib.sha256(f"{_PARSED_FORMAT}\0{path}\0{size}\0{mtime_ns}".encode()).hexdigest()
    store = Path(home) / "parsed" / f"{key[:32]}.json"
    try:
        mids, names = json.loads(store.read_bytes())
        if isinstance(mids, list) and isinstance(names, list) and len(mids) == len(names):
            return tuple(mids), tuple(names)
    except (OSError, ValueError, TypeError):
        pass  # not there yet (or unreadable): parse, then try to keep it
    rows = parse_class_csv(_read_text(Path(path)), path)
    parsed = tuple(m for m, _ in rows), tuple(n for _, n in rows)
    with contextlib.suppress(OSError):  # a read-only home only costs the parse next time
        store.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(store, json.dumps(parsed, ensure_ascii=False))
    return parsed
