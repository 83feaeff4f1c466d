"""``select``: a spec in, ``selection.parquet`` rows (``SELECTION_SCHEMA``) out, one DuckDB query.

Steps, all in SQL over the sorted Parquet copies: candidate rows of the selected classes
(human-verified positives, plus machine labels >= ``min_confidence``; or boxes filtered by
their flags) → one split per image → drop images that carry an excluded class (positive label
or box) → the ``multi_label`` rule → deterministic per-class sampling (``md5(image_id, seed)``
order) → in multi-label mode each image's verified negatives (``selectsql.py``) → the other
columns fetched from the selection copies by row (``selcopy.py``) → with ``negatives``, the
added negatives ("X vs not X", ``negatives.py``). ``label_mid``/``label_name`` are the
*selected* class (a sub-class row of an expanded class is reported under the class the spec
names).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb
import numpy as np
import pyarrow as pa

from oiforge.arrays import from_numpy, run_starts, strings, to_numpy
from oiforge.catalog.catalog import Catalog, open_catalog
from oiforge.catalog.fetch import ProgressFn
from oiforge.catalog.files import official_files
from oiforge.catalog.ingest import KeyedList, OwnImages, keyed_list, own_images
from oiforge.catalog.negatives import background_rows, wanted_negatives
from oiforge.catalog.selcopy import SelectionCopy, attach, copy_views, ensure_copies
from oiforge.catalog.selectsql import Target, machine_rows, selection_sql, with_roles
from oiforge.contracts.selection import (
    SPLITS,
    Selection,
    WrittenSelection,
    conform_selection,
    selection_writer,
)
from oiforge.errors import SpecError, StageError
from oiforge.errtext import exception_text
from oiforge.spec import DatasetSpec, SelectSpec, canonical_hash

log = logging.getLogger(__name__)

#: rows gathered and written at a time by ``select_into`` at most (~130 MB of wide rows).
_SLICE_ROWS: Final = 1 << 18
#: rows of ``select_into``'s first slice (see ``_Slices``).
_FIRST_ROWS: Final = 1 << 14


def spec_hash_of(spec: SelectSpec | DatasetSpec) -> str:
    """The spec's hash: ``DatasetSpec.spec_hash()``, or the same recipe over a ``SelectSpec``."""
    if isinstance(spec, DatasetSpec):
        return spec.spec_hash()
    return canonical_hash(spec)


def select(
    spec: SelectSpec | DatasetSpec,
    catalog: Catalog | None = None,
    progress: ProgressFn | None = None,
) -> Selection:
    """Run the selection of ``spec`` against ``catalog`` (opened from ``spec.version`` if None)."""
    sel = spec.select if isinstance(spec, DatasetSpec) else spec
    if catalog is not None:
        return _select(spec, sel, catalog, progress)
    with open_catalog(sel.version) as cat:
        return _select(spec, sel, cat, progress)


def _select(
    spec: SelectSpec | DatasetSpec, sel: SelectSpec, cat: Catalog, progress: ProgressFn | None
) -> Selection:
    keys = _key_rows(sel, cat, progress)
    found = keys.attach(0, keys.rows.num_rows)
    return finish_selection(cat.connection, spec, keys.targets, keys.excluded, found, keys.machine)


@dataclass(frozen=True)
class _Keys:
    """The selection's key rows in output order (``order_rows``) and what ``attach`` needs."""

    rows: pa.Table
    targets: list[Target]
    excluded: frozenset[str]
    machine: bool
    copies: list[SelectionCopy]
    box_mode: bool
    #: the image columns of the rows without a ``ref`` (machine labels: their copy holds key
    #: rows only), None when there are none
    own: OwnImages | None = None

    def attach(self, start: int, n: int) -> pa.Table:
        """Rows ``start`` to ``start + n`` with their other columns (``selcopy.attach``), the
        image columns of the rows without a ``ref`` from ``own``."""
        own = self.own.part(start, n) if self.own is not None else None
        return attach(self.rows.slice(start, n), self.copies, self.box_mode, own)


def _key_rows(sel: SelectSpec, cat: Catalog, progress: ProgressFn | None) -> _Keys:
    if cat.version != sel.version:
        raise SpecError(f"the spec asks for {sel.version} but the catalog is {cat.version}")
    targets = resolve_targets(cat, sel)
    excluded = expand_classes(cat, sel.exclude_images_with)
    kinds = _needed_kinds(sel, bool(excluded))
    _check_available(sel, kinds)
    cat.ensure(kinds, sel.splits, progress)
    machine = cat.has_table("machine_labels", sel.splits)
    with _building(cat):
        copies = ensure_copies(cat, tuple(kinds), sel.splits)
        lists = _keyed_lists(cat, sel.splits) if machine_rows(sel, machine) else []
    sql = selection_sql(sel, targets, excluded, machine, copies=True)
    box_mode = sel.label_mode == "box"
    con = cat.file_connection()  # reads the copies only (``copies=True``)
    with copy_views(con, copies, _classes_read(targets, excluded)):
        rows = order_rows(con, sql, targets, box_mode)
    own = own_images(rows, lists) if machine_rows(sel, machine) else None
    return _Keys(rows, targets, excluded, machine, copies, box_mode, own)


def _classes_read(targets: list[Target], excluded: frozenset[str]) -> frozenset[str]:
    """Every class whose rows ``selection_sql`` reads from the copies (it filters each read
    by these: the classes' positives, negatives and families, and the excluded classes)."""
    read = set(excluded)
    for t in targets:
        read |= t.mids | t.neg_mids | t.family | {t.mid}
    return frozenset(read)


@contextlib.contextmanager
def _building(cat: Catalog) -> Iterator[None]:
    """Building the copies ``select`` reads (once per input): a failure (disk full while
    sorting at full size, a read-only cache, ...) is a named error, never a traceback."""
    try:
        yield
    except (OSError, duckdb.Error) as exc:
        raise StageError(
            f"cannot build the selection copies under {cat.home}: {exception_text(exc)} "
            "(at full size they need several GB free there, and DuckDB spills its sorts "
            "beside them)"
        ) from exc


def _keyed_lists(cat: Catalog, splits: tuple[str, ...]) -> list[KeyedList]:
    """The keyed image lists of ``splits`` (built when stale), where ``own_images`` finds the
    image columns of machine-label rows (their selection copy holds key rows only)."""
    lists = sorted(
        (i for i in cat.ingested.values() if i.kind == "images" and i.split in splits),
        key=lambda i: i.relpath,
    )
    return [keyed_list(cat.file_connection(), i) for i in lists]


def select_into(
    spec: SelectSpec | DatasetSpec,
    out: str | Path,
    catalog: Catalog | None = None,
    progress: ProgressFn | None = None,
) -> WrittenSelection:
    """``select`` written straight to ``out`` (what ``oiforge select`` runs): the wide rows
    are gathered and written ``_SLICE_ROWS`` at a time, so memory holds the narrow key rows
    and one slice, not the whole selection (3M rows with their image metadata are ~1.5 GB
    in Arrow). Same file as ``select(...).write(out)``, but for its row groups' sizes."""
    sel = spec.select if isinstance(spec, DatasetSpec) else spec
    if catalog is None:
        with open_catalog(sel.version) as cat:
            return select_into(spec, out, cat, progress)
    if sel.negatives != "none":  # drawn against the whole selection: hold it
        result = _select(spec, sel, catalog, progress)
        return WrittenSelection.of(result, result.write(out))
    keys = _key_rows(sel, catalog, progress)
    digest = spec_hash_of(spec)
    labels = label_options(sel) if with_roles(sel) else None
    slices = _Slices(keys.rows.num_rows)
    parts = (
        conform_selection(
            keys.attach(start, rows),
            digest,
            sel.version,
            labels,
            encoded=True,
        )
        for start, rows in slices
    )
    first = next(parts)  # the writer takes the conformed schema (and its metadata)
    with selection_writer(out, first.schema) as writer, ThreadPoolExecutor(1) as pool:
        writing: Future[None] | None = None
        for table in itertools.chain([first], parts):  # write a slice, gather the next
            if writing is not None:
                slices.writer_behind = not writing.done()  # gathered before it was written
                writing.result()
            writing = pool.submit(writer.write_table, table)
        written = _written(keys, digest, with_roles(sel), Path(out))  # beside the last write
        if writing is not None:
            writing.result()
    log.info("selected %d rows for %d classes", written.num_rows, len(keys.targets))
    return written


class _Slices:
    """``(start, rows)`` of the slices ``select_into`` gathers and writes (one empty slice when
    ``n`` is 0): ``_FIRST_ROWS``, then twice as many each time up to ``_SLICE_ROWS``, so the
    writer starts after a short gather and each write overlaps the next slice's gather.

    While the writer keeps up (``writer_behind`` false: each write ended before the next
    slice was gathered), the last slices take half of what is left (not below
    ``_FIRST_ROWS``), so the write that ends the select is a short one: a 543k-row select
    ended with a 256k-row write, ~0.16 s on one core. While the writer is behind, the slices
    stay large: each row group costs it the same again (dictionaries tried, pages, stats).
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.writer_behind = False

    def __iter__(self) -> Iterator[tuple[int, int]]:
        start, rows = 0, min(_FIRST_ROWS, _SLICE_ROWS)
        while True:
            yield start, rows
            start += rows
            if start >= self.n:
                return
            most = _SLICE_ROWS
            if not self.writer_behind:
                most = min(most, max(_FIRST_ROWS, -(-(self.n - start) // 2)))
            rows = min(2 * rows, most)


def _written(keys: _Keys, digest: str, roles: bool, out: Path) -> WrittenSelection:
    """The counts of :class:`Selection` from the key rows (integers, in output order: class,
    role, split, image), without the selection's strings."""
    rows = keys.rows
    group = to_numpy(rows.column("class_idx")).astype(np.int64) * len(SPLITS) + to_numpy(
        rows.column("split_rank")
    ).astype(np.int64)
    role = to_numpy(rows.column("role_rank")).astype(np.int64)
    image = to_numpy(rows.column("image_key"))
    starts = np.ones(len(group), bool)  # an image's first row in its (class, role, split)
    starts[1:] = (group[1:] != group[:-1]) | (role[1:] != role[:-1]) | (image[1:] != image[:-1])
    names = [t.name for t in keys.targets]

    def per_class(mask: np.ndarray) -> dict[str, dict[str, int]]:
        n = np.bincount(group[mask], minlength=len(names) * len(SPLITS)).tolist()
        return {
            c: {s: n[i * len(SPLITS) + j] for j, s in enumerate(SPLITS)}
            for i, c in enumerate(names)
        }

    positive = role == 0
    return WrittenSelection(
        out,
        rows.num_rows,
        digest,
        per_class(positive),
        per_class(positive & starts),
        roles,
        per_class(~positive & starts) if roles else {},
    )


def select_plain(
    con: duckdb.DuckDBPyConnection,
    spec: SelectSpec | DatasetSpec,
    targets: list[Target],
    excluded: frozenset[str],
    machine: bool,
) -> Selection:
    """The same selection over the plain tables of ``con`` (``boxes``, ``human_labels``,
    ``machine_labels``, ``images``): PostgreSQL's pull runs this."""
    sel = spec.select if isinstance(spec, DatasetSpec) else spec
    found = con.sql(selection_sql(sel, targets, excluded, machine)).to_arrow_table()
    return finish_selection(con, spec, targets, excluded, found, machine)


def finish_selection(
    con: duckdb.DuckDBPyConnection,
    spec: SelectSpec | DatasetSpec,
    targets: list[Target],
    excluded: frozenset[str],
    found: pa.Table,
    machine: bool,
) -> Selection:
    """The selected rows in the contract, stamped, with the negatives added (``negatives``)."""
    sel = spec.select if isinstance(spec, DatasetSpec) else spec
    digest = spec_hash_of(spec)
    labels = label_options(sel) if with_roles(sel) else None
    table = conform_selection(found, digest, sel.version, labels)
    names = [t.name for t in targets]
    log.info("selected %d rows for %d classes", table.num_rows, len(targets))
    if sel.negatives == "none":
        return Selection(table, digest, names)
    wanted = wanted_negatives(sel, Selection(table, digest, names).image_counts)
    taken = table.column("image_id").combine_chunks()
    extra = background_rows(con, sel, targets, excluded, taken, wanted, machine)
    both = pa.concat_tables([table, conform_selection(extra, digest, sel.version, labels)])
    return Selection(both, digest, [*names, sel.negatives_name()])


def label_options(sel: SelectSpec) -> dict[str, object]:
    """What shaped a selection's labels (``SELECTION_LABELS_KEY``; build reads it)."""
    negatives = sel.negatives != "none"
    return {
        "multi_label": sel.multi_label,
        "expand_up": sel.expand_up,
        "min_confidence": sel.min_confidence,
        "negatives": sel.negatives,
        "negatives_ratio": sel.negatives_ratio if negatives else None,
        "negatives_class": sel.negatives_name() if negatives else None,
    }


#: The key rows' output order (``order_rows``).
_ORDER: Final = ("class_idx", "role_rank", "split_rank", "image_key", "ref")


def order_rows(
    con: duckdb.DuckDBPyConnection, sql: str, targets: list[Target], box_mode: bool
) -> pa.Table:
    """The key rows of ``sql`` (``selection_sql(copies=True)``) in output order, boxes
    numbered, classes and splits named.

    Order: class, role (positives, then verified negatives), split, image, then ``ref`` (a
    copy holds an image's boxes of a class in ``rowrules.box_order``); ``box_index`` counts
    an image's boxes over all its selected classes, in that order. DuckDB sorts (on both
    cores, as the rows stream out: 3M rows cost no more than unsorted, an Arrow sort and
    take cost 0.5 s). ``split``, ``label_mid`` and ``label_name`` are dictionary arrays over
    the codes (no 3M-row string copies here, on the critical path: ``conform_selection``
    decodes them a slice at a time, beside the write).
    """
    order = ", ".join(f"{k} ASC NULLS LAST" for k in _ORDER)
    rows = con.sql(f"SELECT * FROM ({sql}) ORDER BY {order}").to_arrow_table()
    n = rows.num_rows
    box_index = _box_index(rows["image_key"]) if box_mode else pa.nulls(n, pa.int32())
    idx = rows["class_idx"].combine_chunks()
    columns = {
        "split": _named(rows["split_rank"].combine_chunks(), list(SPLITS)),
        "label_mid": _named(idx, [t.mid for t in targets]),
        "label_name": _named(idx, [t.name for t in targets]),
        "box_index": box_index,
    }
    for name, col in columns.items():
        rows = rows.append_column(name, col)
    return rows


def _named(codes: pa.Array, names: list[str]) -> pa.DictionaryArray:
    """``names[code]`` for each code, as a dictionary array."""
    return pa.DictionaryArray.from_arrays(codes.cast(pa.int32()), strings(names))


def _box_index(image_key: pa.ChunkedArray) -> pa.Array:
    """Position of each row among the rows of its image, in the current row order."""
    keys = to_numpy(image_key)
    by_image = np.argsort(keys, kind="stable")
    grouped = keys[by_image]
    pos = np.arange(len(keys))
    first = np.maximum.accumulate(np.where(run_starts(grouped), pos, 0))
    out = np.empty(len(keys), np.int32)
    out[by_image] = pos - first
    return from_numpy(out)


def resolve_targets(cat: Catalog, sel: SelectSpec) -> list[Target]:
    """The spec's classes as targets: output name, MID, the label MIDs whose positive counts
    (the class, and its sub-classes when expanded: ``expand`` or ``expand_up``), the MIDs
    whose verified negative counts (the class, and with ``expand_up`` its ancestors) and its
    family (the class and all its sub-classes)."""
    targets: list[Target] = []
    for idx, cs in enumerate(sel.classes):
        info = cat.resolve(cs.name)
        below = cat.descendants(info.mid)
        mids = {info.mid}
        if cs.expand or sel.expand_up:
            mids |= below
            for sub in cs.exclude_subclasses:
                drop = cat.resolve(sub).mid
                mids -= {drop} | cat.descendants(drop)
        elif cs.exclude_subclasses:
            raise SpecError(f"class {cs.name!r}: exclude_subclasses needs expand: true")
        above = cat.ancestors(info.mid) if sel.expand_up else set()
        negative = frozenset({info.mid} | above)
        family = frozenset({info.mid} | below | mids)
        name = cs.rename or info.name
        targets.append(Target(idx, info.mid, name, frozenset(mids), negative, family))
    names = [t.name.lower() for t in targets]
    if sel.negatives != "none":
        names.append(sel.negatives_name().lower())
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"classes selected twice (or renamed to the same name): {dupes}")
    return targets


def expand_classes(cat: Catalog, names: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for name in names:
        mid = cat.resolve(name).mid
        out |= {mid} | cat.descendants(mid)
    return frozenset(out)


def _needed_kinds(sel: SelectSpec, excluding: bool) -> list[str]:
    kinds = ["images"]
    if sel.label_mode == "box" or excluding:
        kinds.append("boxes")
    if sel.label_mode == "image" or excluding:
        kinds.append("human_labels")
    if sel.label_mode == "image" and sel.min_confidence is not None:
        kinds.append("machine_labels")
    return kinds


def _check_available(sel: SelectSpec, kinds: list[str]) -> None:
    """A spec the release cannot answer is a named error, not an empty selection.

    V1 (2016_08) has no boxes and no human labels for train (machine labels only).
    """
    present = {(f.kind, f.split) for f in official_files(sel.version, tuple(kinds), sel.splits)}
    with_images = [s for s in sel.splits if ("images", s) in present]
    if sel.label_mode == "box" and not any(("boxes", s) in present for s in with_images):
        raise SpecError(
            f"{sel.version} has no bounding boxes (Open Images has boxes from v2 on): "
            "use label mode 'image', or a later version"
        )
    if sel.label_mode == "image" and sel.min_confidence is None:
        machine_only = [s for s in with_images if ("human_labels", s) not in present]
        if not machine_only:
            return
        why = (
            f"{sel.version} has only machine-generated labels for {', '.join(machine_only)}: "
            "pass --min-confidence (e.g. 0.7) to use them"
        )
        if machine_only == with_images:
            raise SpecError(why)
        log.warning(
            "%s; selecting from %s only",
            why,
            ", ".join(s for s in with_images if s not in machine_only),
        )
