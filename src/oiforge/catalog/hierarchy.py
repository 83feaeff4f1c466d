"""The class hierarchy (``bbox_labels_600_hierarchy.json``) as a DAG of links.

Each node is ``{"LabelName": mid, "Subcategory": [...], "Part": [...]}``. A class with several
parents appears once under each; its children may be listed under only one occurrence, so the
links of every occurrence are merged. ``Subcategory`` links make sub-classes (used by
``expand``); ``Part`` links say "is a part of" (``Human face`` is part of ``Person``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from oiforge.errors import MalformedFileError

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
