"""Class lists and the class hierarchy: parsing, name/MID resolution across versions, search.

A class list is ``MID,DisplayName`` rows, with or without a header line (v5 has none, v7 has
``LabelName,DisplayName``), CRLF or LF, standard CSV quoting. Display names change between
versions (``Airplane`` → ``Fixed-wing aircraft``); :class:`ClassTable` resolves an old name
through the alias table built from every shipped list (same MID, different name).

The hierarchy (``bbox_labels_600_hierarchy.json``) is a DAG of links. Each node is
``{"LabelName": mid, "Subcategory": [...], "Part": [...]}``. A class with several parents
appears once under each; its children may be listed under only one occurrence, so the links
of every occurrence are merged. ``Subcategory`` links make sub-classes (used by ``expand``);
``Part`` links say "is a part of" (``Human face`` is part of ``Person``).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from oiforge.contracts.selection import is_mid
from oiforge.errors import MalformedFileError, UnknownClassError, UserError

#: The hierarchy root: in the hierarchy JSON but in no class list.
ROOT_MID = "/m/0bl9f"
_QUALIFIER_RE = re.compile(r"\s*\([^()]*\)\s*$")
ROOT_NAME = "Entity"


log = logging.getLogger(__name__)


class AmbiguousClassError(UserError):
    """A name that several classes share (case-insensitively); the message lists their MIDs."""

    def __init__(self, name: str, candidates: Iterable[CatalogClass]) -> None:
        self.name = name
        self.candidates = list(candidates)
        listed = ", ".join(
            f"{c.mid} ({c.name}{', boxable' if c.boxable else ''})" for c in self.candidates
        )
        super().__init__(f"class name {name!r} is ambiguous: {listed}; pass the MID instead")


@dataclass(frozen=True)
class CatalogClass:
    """An Open Images class as the catalog knows it: MID, display name in the catalog's version,
    and whether it has boxes (a dataset's classes are :class:`oiforge.contracts.ClassInfo`)."""

    mid: str
    name: str
    boxable: bool


@dataclass(frozen=True)
class ClassMatch:
    """A search hit: the class, a score in 0..100, and the name that matched (maybe an alias)."""

    mid: str
    name: str
    boxable: bool
    score: float
    matched: str


def parse_class_csv(text: str, source: str) -> list[tuple[str, str]]:
    """``(mid, name)`` rows of a class-descriptions CSV; a header line is skipped if present."""
    rows: list[tuple[str, str]] = []
    mids_only = True  # a list of bare MIDs, one a line, so far
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for row in reader:
            if not row or row == [""]:
                continue
            if len(row) == 1 and mids_only and is_mid(row[0].strip()):  # v2/v3 classes-bbox.txt
                rows.append((row[0].strip(), row[0].strip()))
                continue
            if len(row) != 2:
                raise MalformedFileError(
                    source, f"expected 2 fields, got {len(row)}", reader.line_num
                )
            mid, name = row[0].strip(), row[1].strip()
            if not rows and not is_mid(mid) and mid.lower() in ("labelname", "id", "mid"):
                continue  # header line
            if not is_mid(mid):
                raise MalformedFileError(source, f"not a MID: {mid[:40]!r}", reader.line_num)
            rows.append((mid, name))
            mids_only = False
    except csv.Error as exc:
        raise MalformedFileError(source, str(exc), reader.line_num) from exc
    if not rows:
        raise MalformedFileError(source, "no class rows")
    return rows


@dataclass
class ClassTable:
    """All classes of one version, with boxable flags and the cross-version alias table."""

    version: str
    names: dict[str, str]  # mid -> display name
    boxable: frozenset[str]
    aliases: Mapping[str, frozenset[str]] = field(default_factory=dict)  # lower name -> mids

    @functools.cached_property
    def _by_lower(self) -> dict[str, list[str]]:
        """Lower-cased display name -> MIDs (built on first use: a MID-only query skips it)."""
        by_lower: dict[str, list[str]] = {}
        for mid, name in self.names.items():
            by_lower.setdefault(name.lower(), []).append(mid)
        return by_lower

    @functools.cached_property
    def _by_base(self) -> dict[str, list[str]]:
        """Names without their qualifier: "Bat (Animal)" answers to "Bat" (built on first use)."""
        by_base: dict[str, list[str]] = {}
        for mid, name in self.names.items():
            base = _QUALIFIER_RE.sub("", name).lower()
            if base != name.lower():
                by_base.setdefault(base, []).append(mid)
        return by_base

    def info(self, mid: str) -> CatalogClass:
        if mid == ROOT_MID and mid not in self.names:
            return CatalogClass(mid, ROOT_NAME, False)
        return CatalogClass(mid, self.names[mid], mid in self.boxable)

    def __contains__(self, mid: object) -> bool:
        return mid in self.names or mid == ROOT_MID

    def resolve(self, name_or_mid: str) -> CatalogClass:
        """A class by MID, display name (any case) or an older/newer display name."""
        text = name_or_mid.strip()
        if is_mid(text):
            if text in self:
                return self.info(text)
            raise UnknownClassError(text, (), self.version)
        exact = self._by_lower.get(text.lower(), [])
        if len(exact) == 1:
            return self._prefer_boxable_alias(text, exact[0])
        mids = exact or self._alias_mids(text) or self._by_base.get(text.lower(), [])
        if not mids:
            raise UnknownClassError(text, self.suggest(text), self.version)
        boxable = [m for m in mids if m in self.boxable]
        if (len(mids) > 1 and len(boxable) != 1) or (exact and len(mids) > 1):
            raise AmbiguousClassError(text, [self.info(m) for m in sorted(mids)])
        return self.info(boxable[0] if boxable else mids[0])

    def _prefer_boxable_alias(self, text: str, mid: str) -> CatalogClass:
        """``Airplane`` names a non-boxable class in v7 and, in v5/v6, the boxable
        ``/m/0cmf2`` (now ``Fixed-wing aircraft``): the boxable class is the one meant."""
        if mid in self.boxable:
            return self.info(mid)
        boxable = [m for m in self._alias_mids(text) if m in self.boxable and m != mid]
        if len(boxable) == 1:
            log.info("%r: using boxable %s (also the name of %s)", text, boxable[0], mid)
            return self.info(boxable[0])
        return self.info(mid)

    def _alias_mids(self, text: str) -> list[str]:
        return sorted(m for m in self.aliases.get(text.lower(), ()) if m in self.names)

    def suggest(self, text: str, limit: int = 5) -> list[str]:
        """The display names closest to ``text`` (edit distance, then substring)."""
        choices = {mid: name.lower() for mid, name in self.names.items()}
        from rapidfuzz import fuzz, process  # only fuzzy lookups need it (14 ms to import)

        hits = process.extract(text.lower(), choices, scorer=fuzz.QRatio, limit=limit)
        out = [self.names[mid] for _, score, mid in hits if score >= 50]
        out += [m.name for m in self.search(text, limit=limit) if m.name not in out]
        return out[:limit]

    def search(self, query: str, limit: int = 20, boxable_only: bool = False) -> list[ClassMatch]:
        """Classes whose name (or alias, or MID) matches ``query``: exact, substring, then fuzzy."""
        q = query.strip().lower()
        pool = {m: n for m, n in self.names.items() if not boxable_only or m in self.boxable}
        if not q:
            return [self._match(m, 100.0, n) for m, n in sorted(pool.items(), key=_by_name)][:limit]
        scored: dict[str, tuple[float, str]] = {}
        for mid, name in pool.items():
            score = _direct_score(q, name.lower(), mid)
            if score:
                scored[mid] = (score, name)
        for alias, mids in self.aliases.items():
            if q in alias:
                for mid in mids & pool.keys():
                    scored.setdefault(mid, (98.0 if q == alias else 70.0, alias))
        if len(scored) < limit:
            self._add_fuzzy(q, pool, scored, limit)
        ranked = sorted(scored.items(), key=lambda kv: (-kv[1][0], pool[kv[0]].lower(), kv[0]))
        return [self._match(mid, s, matched) for mid, (s, matched) in ranked[:limit]]

    def _add_fuzzy(
        self, q: str, pool: dict[str, str], scored: dict[str, tuple[float, str]], limit: int
    ) -> None:
        choices = {mid: name.lower() for mid, name in pool.items() if mid not in scored}
        from rapidfuzz import fuzz, process

        hits = process.extract(q, choices, scorer=fuzz.QRatio, limit=limit, score_cutoff=60)
        for _, score, mid in hits:
            scored[mid] = (float(score) * 0.69, pool[mid])  # below every direct hit

    def _match(self, mid: str, score: float, matched: str) -> ClassMatch:
        return ClassMatch(mid, self.names[mid], mid in self.boxable, round(score, 1), matched)


def _by_name(item: tuple[str, str]) -> tuple[str, str]:
    return (item[1].lower(), item[0])


def _direct_score(q: str, name: str, mid: str) -> float:
    if q in (name, mid):
        return 100.0
    if name.startswith(q):
        return 95.0
    if q in name:
        return 90.0 if f" {q}" in f" {name}" else 85.0
    return 0.0


class LazyAliases(Mapping[str, frozenset[str]]):
    """An alias table built on first use (most opens resolve names that need none)."""

    def __init__(self, make: Callable[[], Mapping[str, frozenset[str]]]) -> None:
        self._make = make
        self._table: Mapping[str, frozenset[str]] | None = None

    def _get(self) -> Mapping[str, frozenset[str]]:
        if self._table is None:
            self._table = self._make()
        return self._table

    def __getitem__(self, key: str) -> frozenset[str]:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def build_aliases(
    current: Mapping[str, str], others: Iterable[Iterable[tuple[str, str]]]
) -> dict[str, frozenset[str]]:
    """Lower-cased names used by other versions for MIDs whose name differs in ``current``."""
    table: dict[str, set[str]] = {}
    for rows in others:
        for mid, name in rows:
            now = current.get(mid)
            if now is not None and now.lower() != name.lower():
                table.setdefault(name.lower(), set()).add(mid)
    return {k: frozenset(v) for k, v in table.items()}


LinkKind = Literal["subcategory", "part"]
_KEYS: dict[str, LinkKind] = {"Subcategory": "subcategory", "Part": "part"}


@dataclass(frozen=True)
class TreeNode:
    """One node of a rendered subtree; ``kind`` is how it hangs under its parent."""

    mid: str
    kind: LinkKind | None
    children: tuple[TreeNode, ...] = ()


@dataclass
class Hierarchy:
    """Parent → child links of both kinds, and the root MID."""

    root: str
    links: list[tuple[str, str, LinkKind]]
    _children: dict[str, list[tuple[str, LinkKind]]] = field(init=False, repr=False)
    _parents: dict[str, list[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._children, self._parents = {}, {}
        for parent, child, kind in self.links:
            self._children.setdefault(parent, []).append((child, kind))
            if kind == "subcategory":
                self._parents.setdefault(child, []).append(parent)

    @property
    def mids(self) -> set[str]:
        return {self.root} | {c for _, c, _ in self.links}

    def children(self, mid: str, parts: bool = False) -> list[tuple[str, LinkKind]]:
        return [(c, k) for c, k in self._children.get(mid, []) if parts or k == "subcategory"]

    def parents(self, mid: str) -> list[str]:
        """Direct Subcategory parents (several for the multi-parent classes)."""
        return list(self._parents.get(mid, []))

    def ancestors(self, mid: str) -> set[str]:
        """Every class above ``mid`` through Subcategory links (``mid`` itself excluded)."""
        seen: set[str] = set()
        stack = [mid]
        while stack:
            for parent in self._parents.get(stack.pop(), []):
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        seen.discard(mid)
        return seen

    def descendants(self, mid: str) -> set[str]:
        """Every class below ``mid`` through Subcategory links (``mid`` itself excluded)."""
        seen: set[str] = set()
        stack = [mid]
        while stack:
            for child, _ in self.children(stack.pop()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        seen.discard(mid)
        return seen

    def subtree(self, mid: str, parts: bool = False, depth: int | None = None) -> TreeNode:
        """``mid`` and what hangs below it; a shared class appears under each parent."""
        return self._node(mid, None, parts, depth, frozenset())

    def _node(
        self, mid: str, kind: LinkKind | None, parts: bool, depth: int | None, path: frozenset[str]
    ) -> TreeNode:
        if depth is not None and depth <= 0:
            return TreeNode(mid, kind)
        below = path | {mid}
        nxt = None if depth is None else depth - 1
        kids = tuple(
            self._node(c, k, parts, nxt, below)
            for c, k in self.children(mid, parts)
            if c not in below  # a cycle in a hostile file must not recurse forever
        )
        return TreeNode(mid, kind, kids)


def parse_hierarchy(text: str, source: str) -> Hierarchy:
    """Parse the hierarchy JSON; a structural problem names the file."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedFileError(source, exc.msg, exc.lineno) from exc
    if not isinstance(data, dict) or not isinstance(data.get("LabelName"), str):
        raise MalformedFileError(source, "the root must be an object with a LabelName")
    links: list[tuple[str, str, LinkKind]] = []
    seen: set[tuple[str, str, LinkKind]] = set()
    for link in _walk(data, source):
        if link not in seen:
            seen.add(link)
            links.append(link)
    return Hierarchy(data["LabelName"], links)


def _walk(node: dict[str, Any], source: str) -> Iterator[tuple[str, str, LinkKind]]:
    stack = [node]
    while stack:
        cur = stack.pop()
        parent = cur["LabelName"]
        for key, kind in _KEYS.items():
            kids = cur.get(key, [])
            if not isinstance(kids, list):
                raise MalformedFileError(source, f"{key} of {parent} is not a list")
            for kid in kids:
                if not isinstance(kid, dict) or not isinstance(kid.get("LabelName"), str):
                    raise MalformedFileError(source, f"a child of {parent} has no LabelName")
                yield (parent, kid["LabelName"], kind)
                stack.append(kid)
