"""Plan a book from the catalog: a class per letter, its candidate photos -> ``book.json``.

Class choice: for each letter, classes whose printed label starts with it, unless they show
people, are on the blocked list, or have too few human-verified positives. Score: log10 of the
positives, plus ``KID_BONUS`` decades for a kid-friendly concrete noun, so a kid-friendly class
with 100 positives beats an abstract one with 90,000.

The plan is a draft: each letter carries up to ``candidates_per_letter`` people-free photos,
best first, so the render can still fill its grid when some downloads fail. The plan also
becomes ``selection.parquet`` (the download stage's input).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from oiforge.atomic import write_bytes_atomic
from oiforge.book.model import (
    LETTERS,
    BookPlan,
    Box,
    CustomClass,
    LetterPlan,
    Overrides,
    Photo,
    PlanRequest,
    SelectOptions,
)
from oiforge.book.query import PhotoQuery, depiction_mids, person_mids, query_photos
from oiforge.book.words import BLOCKED_NAMES, KID_FRIENDLY, label_of, letter_of
from oiforge.contracts import SELECTION_SCHEMA, is_image_id
from oiforge.errors import InvalidInputError, StageError

if TYPE_CHECKING:
    from oiforge.endpoints import Endpoints

log = logging.getLogger(__name__)
CLASSES_TRIED_PER_LETTER = 6


class CatalogLike(Protocol):
    """What the planner needs of ``oiforge.catalog.Catalog``."""

    @property
    def connection(self) -> duckdb.DuckDBPyConnection: ...

    def resolve(self, name_or_mid: str) -> Any: ...

    def class_counts(self) -> pa.Table: ...


PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MAX_LOCAL_PHOTOS = 16
MAX_LOCAL_BYTES = 64 * 1024 * 1024
LOCAL_LICENCE = "private photo, used with permission"


def _local_photo(path: Path) -> Photo | None:
    try:
        if path.stat().st_size > MAX_LOCAL_BYTES:
            return None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
    return Photo(
        image_id=f"local-{digest[:16]}",
        source="local",
        path=str(path),
        sha256=digest,
        title=path.stem,
        license=LOCAL_LICENCE,
    )


def custom_letter(custom: CustomClass) -> LetterPlan:
    """The letter page of a custom class: its folder's photos, sorted by file name."""
    files = sorted(
        p for p in custom.folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
    )
    photos = [p for p in (_local_photo(f) for f in files[: 2 * MAX_LOCAL_PHOTOS]) if p]
    unique = list({p.image_id: p for p in reversed(photos)}.values())[::-1]
    return LetterPlan(
        letter=custom.letter,
        label=label_of(custom.name),
        class_name=custom.name,
        photos=tuple(unique[:MAX_LOCAL_PHOTOS]),
    )


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


def plan_from_catalog(req: PlanRequest, endpoints: Endpoints | None = None) -> BookPlan:
    """Open the request's catalog, fetch the label tables a plan needs, and plan the book."""
    from oiforge.catalog import open_catalog

    with open_catalog(req.select.version, endpoints) as cat:
        cat.ensure(["images", "boxes" if req.select.label_mode == "box" else "human_labels"])
        return plan_book(cat, req)


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
        commercial=sel.commercial,
        omit_no_derivatives=sel.no_derivatives == "omit",
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


# -- class choice ---------------------------------------------------------------------------
KID_BONUS = 3.0


@dataclass(frozen=True)
class ClassCandidate:
    """A class that could be a letter's page."""

    mid: str
    name: str
    positives: int

    @property
    def label(self) -> str:
        return label_of(self.name)

    @property
    def letter(self) -> str | None:
        return letter_of(self.name)

    @property
    def is_kid_friendly(self) -> bool:
        return self.name.lower() in KID_FRIENDLY

    @property
    def score(self) -> float:
        return math.log10(1 + self.positives) + (KID_BONUS if self.is_kid_friendly else 0.0)


def _sort_key(c: ClassCandidate) -> tuple[float, str, str]:
    return (-c.score, c.label.lower(), c.mid)


def rank_classes(
    classes: Iterable[tuple[str, str]],
    positives: Mapping[str, int],
    excluded: set[str],
    min_positives: int = 1,
) -> dict[str, list[ClassCandidate]]:
    """Per letter, its candidate classes, best first; one class per printed label."""
    by_label: dict[str, ClassCandidate] = {}
    for mid, name in classes:
        cand = ClassCandidate(mid, name, int(positives.get(mid, 0)))
        if mid in excluded or name.lower() in BLOCKED_NAMES or cand.letter is None:
            continue
        if cand.positives < min_positives:
            continue
        key = cand.label.lower()
        if key not in by_label or _sort_key(cand) < _sort_key(by_label[key]):
            by_label[key] = cand
    ranked: dict[str, list[ClassCandidate]] = {}
    for cand in sorted(by_label.values(), key=_sort_key):
        assert cand.letter is not None
        ranked.setdefault(cand.letter, []).append(cand)
    return ranked


# -- selection.parquet --------------------------------------------------------------------
def plan_hash(plan: BookPlan) -> str:
    """SHA-256 (first 16 hex) of the plan's selection options: the ``spec_hash`` column."""
    return hashlib.sha256(plan.select.model_dump_json().encode()).hexdigest()[:16]


def _row(entry: LetterPlan, photo: Photo, index: int, spec_hash: str) -> dict[str, Any]:
    box = photo.box
    return {
        "image_id": photo.image_id,
        "split": photo.split or "train",
        "label_mid": entry.mid,
        "label_name": entry.class_name,
        "source": "book",
        "confidence": 1.0,
        "box_index": index if box else None,
        "x_min": box.x_min if box else None,
        "x_max": box.x_max if box else None,
        "y_min": box.y_min if box else None,
        "y_max": box.y_max if box else None,
        "original_url": photo.original_url,
        "landing_url": photo.landing_url,
        "thumbnail_url": photo.thumbnail_url,
        "license": photo.license,
        "author": photo.author,
        "author_profile_url": photo.author_profile_url,
        "title": photo.title,
        "original_size": photo.original_size,
        "original_md5": photo.original_md5,
        "rotation": photo.rotation,
        "spec_hash": spec_hash,
    }


def plan_to_selection(plan: BookPlan) -> pa.Table:
    """One row per Open Images photo of the plan (local photos need no download)."""
    h = plan_hash(plan)
    rows = [
        _row(entry, photo, 0, h)
        for entry in plan.letters
        for photo in entry.photos
        if photo.source == "openimages" and is_image_id(photo.image_id)
    ]
    return pa.Table.from_pylist(rows, schema=SELECTION_SCHEMA)


def write_selection(plan: BookPlan, path: str | Path) -> int:
    """Write ``selection.parquet`` atomically; returns the row count."""
    table = plan_to_selection(plan)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    write_bytes_atomic(path, buf.getvalue())
    return int(table.num_rows)
