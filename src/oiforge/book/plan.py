"""Plan a book from the catalog: letters, classes and candidate photos -> ``book.json``.

The plan is a draft: each letter carries up to ``candidates_per_letter`` people-free photos,
best first, so the render can still fill its grid when some downloads fail. The plan also
becomes ``selection.parquet`` (the download stage's input).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from oiforge.book.choose import ClassCandidate, rank_classes
from oiforge.book.custom import CustomClass, Overrides, custom_letter
from oiforge.book.model import (
    LETTERS,
    BookPlan,
    Box,
    LayoutOptions,
    LetterPlan,
    Photo,
    SelectOptions,
)
from oiforge.book.people import depiction_mids, person_mids
from oiforge.book.query import PhotoQuery, query_photos
from oiforge.book.words import label_of, letter_of
from oiforge.errors import InvalidInputError, StageError

log = logging.getLogger(__name__)
CLASSES_TRIED_PER_LETTER = 6


class CatalogLike(Protocol):
    """What the planner needs of ``oiforge.catalog.Catalog``."""

    @property
    def connection(self) -> duckdb.DuckDBPyConnection: ...

    def resolve(self, name_or_mid: str) -> Any: ...

    def class_counts(self) -> pa.Table: ...


@dataclass(frozen=True)
class PlanRequest:
    """Everything ``plan_book`` needs besides the catalog."""

    layout: LayoutOptions = field(default_factory=LayoutOptions)
    select: SelectOptions = field(default_factory=SelectOptions)
    custom: tuple[CustomClass, ...] = ()
    overrides: Overrides = field(default_factory=Overrides)


def positives_from_counts(table: pa.Table) -> dict[str, int]:
    """Sum the ``positives_<split>`` columns of ``Catalog.class_counts()``."""
    cols = [c for c in table.column_names if c.startswith("positives_")]
    data = table.select(["label_mid", *cols]).to_pydict()
    return {mid: sum(int(data[c][i] or 0) for c in cols) for i, mid in enumerate(data["label_mid"])}


def _require_tables(con: duckdb.DuckDBPyConnection, label_mode: str) -> None:
    needed = ("images", "boxes" if label_mode == "box" else "human_labels")
    for table in needed:
        row = con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1)").fetchone()
        if not row or row[0] == 0:
            raise StageError(
                f"the catalog has no {table} rows: run `oiforge catalog fetch --kinds "
                f"{table}` first (or `oiforge book`, which fetches what it needs)"
            )


def _pinned(cat: CatalogLike, pins: Mapping[str, str]) -> dict[str, ClassCandidate]:
    out = {}
    for letter, name in pins.items():
        info = cat.resolve(name)  # UnknownClassError names the closest classes
        if letter_of(info.name) != letter:
            raise InvalidInputError(
                f"--pick {letter}={name}: {label_of(info.name)!r} does not start with {letter}"
            )
        out[letter] = ClassCandidate(info.mid, info.name, 0)
    return out


def _photo(row: Mapping[str, Any], mode: str) -> Photo:
    box = None
    if mode == "box" and row["x_min"] is not None:
        box = Box(x_min=row["x_min"], x_max=row["x_max"], y_min=row["y_min"], y_max=row["y_max"])
    text = {k: str(row[k] or "") for k in ("title", "author", "author_profile_url", "license")}
    return Photo(
        image_id=str(row["image_id"]),
        split=str(row["split"] or ""),
        box=box,
        landing_url=str(row["landing_url"] or ""),
        original_url=str(row["original_url"] or ""),
        thumbnail_url=str(row["thumbnail_url"] or ""),
        original_size=row["original_size"],
        original_md5=str(row["original_md5"] or ""),
        rotation=row["rotation"],
        **text,
    )


def _candidates(
    cat: CatalogLike, req: PlanRequest, positives: Mapping[str, int], people: set[str]
) -> dict[str, list[ClassCandidate]]:
    sel = req.select
    classes = cat.connection.execute("SELECT label_mid, label_name FROM classes").fetchall()
    ranked = rank_classes(classes, positives, people)
    for letter, cand in _pinned(cat, sel.pins).items():
        ranked[letter] = [ClassCandidate(cand.mid, cand.name, positives.get(cand.mid, 0))]
    return {
        letter: ranked.get(letter, [])[:CLASSES_TRIED_PER_LETTER]
        for letter in LETTERS
        if letter not in sel.skip
    }


@dataclass
class _Assigner:
    """Walks the letters in order, giving each the first class with enough unused photos."""

    photos: dict[str, list[dict[str, Any]]]
    select: SelectOptions
    force: Mapping[str, tuple[str, ...]]
    used: set[str] = field(default_factory=set)

    def assign(self, letter: str, cands: list[ClassCandidate]) -> LetterPlan | None:
        reserved = {i for other, ids in self.force.items() if other != letter for i in ids}
        for cand in cands:
            rows = [
                r
                for r in self.photos.get(cand.mid, [])
                if r["image_id"] not in self.used and r["image_id"] not in reserved
            ][: self.select.candidates_per_letter]
            if len(rows) < self.select.min_photos:
                continue
            self.used.update(str(r["image_id"]) for r in rows)
            photos = tuple(_photo(r, self.select.label_mode) for r in rows)
            return LetterPlan(
                letter=letter,
                label=cand.label,
                class_name=cand.name,
                mid=cand.mid,
                positives=cand.positives,
                photos=photos,
            )
        return None


def plan_book(cat: CatalogLike, req: PlanRequest) -> BookPlan:
    """A draft plan: for each letter A-Z the best class with people-free photos."""
    sel, con = req.select, cat.connection
    _require_tables(con, sel.label_mode)
    positives = positives_from_counts(cat.class_counts())
    people = person_mids(con)
    customs = {c.letter: c for c in req.custom}
    cands = {k: v for k, v in _candidates(cat, req, positives, people).items() if k not in customs}
    forced = tuple(i for ids in req.overrides.force.values() for i in ids)
    query = PhotoQuery(
        mids=tuple(sorted({c.mid for cs in cands.values() for c in cs})),
        person_mids=tuple(sorted(people)),
        depiction_mids=tuple(sorted(depiction_mids(con))),
        label_mode=sel.label_mode,
        exclude_depictions=sel.exclude_depictions,
        cc_by_only=sel.cc_by_only,
        seed=sel.seed,
        per_class=2 * sel.candidates_per_letter + len(forced),
        force=forced,
        drop=tuple(sorted(req.overrides.drop)),
    )
    assigner = _Assigner(query_photos(con, query), sel, req.overrides.force)
    letters, skipped = [], {}
    for letter in LETTERS:
        if letter in customs:
            letters.append(custom_letter(customs[letter]))
        elif letter in sel.skip:
            skipped[letter] = "skipped on request"
        elif (entry := assigner.assign(letter, cands.get(letter, []))) is not None:
            letters.append(entry)
        else:
            skipped[letter] = "no class with enough people-free photos"
    notes = _force_notes(req.overrides, letters)
    return BookPlan(
        layout=req.layout, select=sel, letters=tuple(letters), skipped=skipped, notes=notes
    )


def _force_notes(overrides: Overrides, letters: list[LetterPlan]) -> tuple[str, ...]:
    planned = {e.letter: {p.image_id for p in e.photos} for e in letters}
    return tuple(
        f"forced {i} for {letter} is not usable (not labelled with the class, shows people, "
        "or filtered out)"
        for letter, ids in sorted(overrides.force.items())
        for i in ids
        if i not in planned.get(letter, set())
    )
