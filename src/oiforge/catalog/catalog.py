"""The catalog of one Open Images version: classes, hierarchy and DuckDB views of the metadata.

``open_catalog("v7")`` works offline for classes and the hierarchy (package data); the label,
box and image tables are fetched on demand (``fetch_missing``), ingested to Parquet once, and
exposed as DuckDB views ``classes``, ``images``, ``human_labels``, ``machine_labels``,
``boxes`` and ``hierarchy`` on :attr:`Catalog.connection`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa

from oiforge.catalog.classes import (
    ClassInfo,
    ClassMatch,
    ClassTable,
    build_aliases,
    parse_class_csv,
)
from oiforge.catalog.fetch import ProgressFn, cached_path, fetch_file
from oiforge.catalog.files import OfficialFile, official_files
from oiforge.catalog.hierarchy import Hierarchy, TreeNode, parse_hierarchy
from oiforge.catalog.ingest import COLUMNS, TABLE_KINDS, Ingested, ingest
from oiforge.contracts import SPLITS
from oiforge.endpoints import Endpoints
from oiforge.errors import FetchError, StageError
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
_DUCK_TYPES: Final = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "FLOAT": pa.float32()}


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
    ) -> None:
        self.version = version
        self.classes = classes
        self.hierarchy = hierarchy
        self.endpoints = endpoints
        self.home = home
        self.fetch_missing = fetch_missing
        self.ingested: dict[str, Ingested] = {}
        self._con = duckdb.connect()
        self._con.register("classes", _classes_arrow(classes))
        self._con.register("hierarchy", _hierarchy_arrow(hierarchy))
        self._refresh_views()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        return self._con

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- classes and hierarchy ------------------------------------------------------------
    def resolve(self, name_or_mid: str) -> ClassInfo:
        """A class by MID, display name (case-insensitive) or a name from another version."""
        return self.classes.resolve(name_or_mid)

    def search(self, query: str, limit: int = 20, boxable_only: bool = False) -> list[ClassMatch]:
        return self.classes.search(query, limit, boxable_only)

    def subtree(self, mid: str, parts: bool = False, depth: int | None = None) -> TreeNode:
        return self.hierarchy.subtree(self.resolve(mid).mid, parts, depth)

    def descendants(self, mid: str) -> set[str]:
        return self.hierarchy.descendants(self.resolve(mid).mid)

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
        self._refresh_views()

    def ingest_cached(self) -> None:
        """Ingest every table file of this version already in the cache (cheap when current)."""
        for f in official_files(self.version, TABLE_KINDS):
            path = cached_path(f, self.home)
            if path.exists() and f.relpath not in self.ingested:
                self._ingest(f, path)
        self._refresh_views()

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
        for kind in TABLE_KINDS:
            paths = [i.parquet for i in self.ingested.values() if i.kind == kind]
            self._con.execute(f"CREATE OR REPLACE VIEW {kind} AS {_view_sql(kind, paths)}")

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


def _classes_arrow(classes: ClassTable) -> pa.Table:
    mids = list(classes.names)
    return pa.table(
        {
            "label_mid": pa.array(mids, pa.string()),
            "label_name": pa.array([classes.names[m] for m in mids], pa.string()),
            "boxable": pa.array([m in classes.boxable for m in mids], pa.bool_()),
        }
    )


def _hierarchy_arrow(h: Hierarchy) -> pa.Table:
    return pa.table(
        {
            "parent_mid": pa.array([p for p, _, _ in h.links], pa.string()),
            "child_mid": pa.array([c for _, c, _ in h.links], pa.string()),
            "kind": pa.array([k for _, _, k in h.links], pa.string()),
        }
    )


def open_catalog(
    version: str = "v7",
    endpoints: Endpoints | None = None,
    home: Path | str | None = None,
    fetch_missing: bool = True,
) -> Catalog:
    """Open the catalog of ``version``; classes and hierarchy work offline."""
    files = official_files(version)
    ep = endpoints or Endpoints.from_env()
    root = Path(home) if home is not None else oiforge_home()
    by_kind = {f.kind: f for f in files if f.split is None}
    text = _SourceReader(ep, root, fetch_missing)
    boxable_rows = parse_class_csv(*text.read(by_kind["class_descriptions_boxable"]))
    all_rows = text.read_optional(by_kind["class_descriptions"])
    if all_rows is None:
        log.warning("no full class list for %s; using the boxable classes only", version)
    rows = parse_class_csv(*all_rows) if all_rows else boxable_rows
    names = dict(rows)
    names.update((m, n) for m, n in boxable_rows if m not in names)
    aliases = build_aliases(names, _packaged_lists())
    table = ClassTable(version, names, frozenset(m for m, _ in boxable_rows), aliases)
    hierarchy = parse_hierarchy(*text.read(by_kind["hierarchy"]))
    cat = Catalog(version, table, hierarchy, ep, root, fetch_missing)
    cat.ingest_cached()
    return cat


class _SourceReader:
    """Reads a small official file: the cache, else package data, else a fetch."""

    def __init__(self, endpoints: Endpoints, home: Path, fetch_missing: bool) -> None:
        self.endpoints, self.home, self.fetch_missing = endpoints, home, fetch_missing

    def read(self, f: OfficialFile) -> tuple[str, str]:
        found = self.read_optional(f)
        if found is None:
            raise StageError(
                f"{f.relpath} is neither shipped nor cached; run `oiforge catalog fetch "
                f"--version {f.version} --kinds {f.kind}`"
            )
        return found

    def read_optional(self, f: OfficialFile) -> tuple[str, str] | None:
        cached = cached_path(f, self.home)
        if cached.exists():
            return _read_text(cached), str(cached)
        if f.relpath in PACKAGED:
            path = package_data("openimages", PACKAGED[f.relpath])
            return _read_text(path), str(path)
        if not self.fetch_missing:
            return None
        try:
            got = fetch_file(f, self.endpoints, self.home)
        except FetchError as exc:
            log.warning("%s", exc)
            return None
        return _read_text(got.path), str(got.path)


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8-sig", errors="replace")


def _packaged_lists() -> list[list[tuple[str, str]]]:
    out = []
    for rel, name in PACKAGED.items():
        if rel.endswith(".csv"):
            path = package_data("openimages", name)
            out.append(parse_class_csv(_read_text(path), str(path)))
    return out
