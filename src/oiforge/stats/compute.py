"""``compute_stats``: every label-quality table of one version and split, from one pass.

The functions named after single tables (``label_frequency``, ``machine_label_precision``,
...) are for notebooks that want one of them; :func:`compute_stats` returns all of them and
scans the machine labels once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from oiforge.contracts import SPLITS
from oiforge.stats import queries, tables
from oiforge.stats.binning import DEFAULT_THRESHOLDS, parse_thresholds, recommend

if TYPE_CHECKING:
    from oiforge.catalog import Catalog
    from oiforge.endpoints import Endpoints

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelStats:
    """All tables of one version and split (Arrow; ``.to_pandas()`` for DataFrames)."""

    version: str
    split: str
    thresholds: tuple[float, ...]
    frequency: pa.Table
    confirmation: pa.Table
    by_confidence: pa.Table
    by_frequency: pa.Table
    precision: pa.Table
    machine_labels: int
    invalid_confidence: int
    seconds: float = field(default=0.0, compare=False)

    def summary(self) -> dict[str, object]:
        """Headline numbers (written to ``stats.json``)."""
        conf = self.confirmation
        verified = int(pc.sum(conf.column("verified")).as_py() or 0)
        confirmed = int(pc.sum(conf.column("confirmed")).as_py() or 0)
        return {
            "version": self.version, "split": self.split, "thresholds": list(self.thresholds),
            "labels_with_images": int(pc.sum(pc.greater(self.frequency["images"], 0)).as_py() or 0),
            "labels_with_machine_labels": conf.num_rows,
            "labels_with_verified_machine_labels":
                int(pc.sum(pc.greater(conf["verified"], 0)).as_py() or 0),
            "machine_labels": self.machine_labels, "verified": verified,
            "confirmed": confirmed, "share_confirmed": confirmed / verified if verified else None,
            "invalid_confidence": self.invalid_confidence, "seconds": round(self.seconds, 3),
        }  # fmt: skip

    def recommend(self, mids: Iterable[str], target: float = 0.9) -> list[Recommendation]:
        """For each MID, the lowest threshold whose precision is >= ``target`` (95% lower
        bound of the interval); see :class:`Recommendation`."""
        return [_recommend_one(self.precision, mid, target, self._name(mid)) for mid in mids]

    def _name(self, mid: str) -> str:
        found = self.frequency.filter(pc.equal(self.frequency["label_mid"], mid))
        return str(found["label_name"][0]) if found.num_rows else mid


@dataclass(frozen=True)
class Recommendation:
    """The evidence for one class's ``select --min-confidence``."""

    label_mid: str
    label_name: str
    target: float
    threshold: float | None  # None: no threshold reaches the target with the evidence at hand
    precision_low: float | None
    rows: tuple[dict[str, object], ...]  # this class's precision-table rows

    @property
    def text(self) -> str:
        """One line a person can act on."""
        if self.threshold is not None:
            row = next(r for r in self.rows if r["threshold"] == self.threshold)
            return (
                f"{self.label_name}: --min-confidence {self.threshold:g} (precision "
                f"{row['precision']:.2f}, >= {self.precision_low:.2f} at 95%, "
                f"{row['verified']:,} verified; adds up to {row['machine_labels']:,} labels)"
            )
        seen = [r for r in self.rows if r["verified"]]
        if not seen:
            return f"{self.label_name}: no human-verified machine labels; use human labels only"
        best = max(seen, key=lambda r: (r["ci_low"], -float(r["threshold"])))  # type: ignore[arg-type]
        return (
            f"{self.label_name}: no threshold reaches {self.target:.2f} precision with 95% "
            f"confidence (best {best['threshold']:g}: {best['precision']:.2f} over "
            f"{best['verified']:,} verified); use human labels only"
        )


def _recommend_one(precision: pa.Table, mid: str, target: float, name: str) -> Recommendation:
    rows = precision.filter(pc.equal(precision["label_mid"], mid)).to_pylist()
    found = recommend([(r["threshold"], r["confirmed"], r["verified"]) for r in rows], target)
    threshold, low = (found[0], found[1]) if found else (None, None)
    return Recommendation(mid, name, target, threshold, low, tuple(rows))


@contextlib.contextmanager
def _opened(catalog: Catalog | str, endpoints: Endpoints | None, fetch: bool) -> Iterator[Catalog]:
    if not isinstance(catalog, str):
        yield catalog
        return
    from oiforge.catalog import open_catalog

    with open_catalog(catalog, endpoints, fetch_missing=fetch) as cat:
        yield cat


def _ensure(cat: Catalog, split: str) -> None:
    cat.ensure(["human_labels"], SPLITS)  # frequency over all splits needs every split
    cat.ensure(["machine_labels"], queries.splits_of(split))


def compute_stats(
    catalog: Catalog | str = "v7",
    split: str = "train",
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    endpoints: Endpoints | None = None,
    fetch_missing: bool = True,
    progress: queries.Progress | None = None,
) -> LabelStats:
    """Every table for ``split`` (or ``"all"``); fetches and ingests label files if needed.

    ``progress`` gets the percent done of the one pass over the machine labels."""
    queries.check_split(split)
    wanted = parse_thresholds(thresholds)
    with _opened(catalog, endpoints, fetch_missing) as cat:
        _ensure(cat, split)
        start = time.perf_counter()
        cube = tables.Cube.of(queries.confirmation_cube(cat.connection, split, progress))
        positives = queries.sidecar_positive_counts(cat, split)
        if positives is None:
            positives = queries.positive_counts(cat.connection, split)
        seconds = time.perf_counter() - start
        confirmation = tables.confirmation_table(cube, positives, cat.name)
        stats = LabelStats(
            cat.version, split, wanted,
            tables.frequency_table(positives, cube, cat.name), confirmation,
            tables.by_confidence(cube), tables.by_frequency(confirmation),
            tables.precision_table(cube, wanted, cat.name),
            int(cube.counts["machine"].sum()),
            int(cube.counts["machine"][cube.pct < 0].sum()), seconds,
        )  # fmt: skip
    log.info("label statistics of %s %s in %.2f s", stats.version, split, seconds)
    return stats


def label_frequency(
    catalog: Catalog | str = "v7",
    split: str = "train",
    *,
    endpoints: Endpoints | None = None,
    fetch_missing: bool = True,
) -> pa.Table:
    """Images per label (human-verified positives) in ``split`` and in all splits, and the
    split's machine labels; from the ingest's per-file counts, so no join (fast at any size)."""
    queries.check_split(split)
    with _opened(catalog, endpoints, fetch_missing) as cat:
        _ensure(cat, split)
        positives = queries.sidecar_positive_counts(cat, split)
        if positives is None:
            positives = queries.positive_counts(cat.connection, split)
        cube = tables.Cube.of_counts(*queries.machine_counts(cat, split))
        return tables.frequency_table(positives, cube, cat.name)


def machine_label_confirmation(catalog: Catalog | str = "v7", split: str = "train") -> pa.Table:
    """Per label: machine labels, how many humans verified, the share confirmed."""
    return compute_stats(catalog, split).confirmation


def confirmation_by_confidence(catalog: Catalog | str = "v7", split: str = "train") -> pa.Table:
    """Share of machine labels confirmed per machine-confidence bin (pooled over labels)."""
    return compute_stats(catalog, split).by_confidence


def confirmation_by_frequency(catalog: Catalog | str = "v7", split: str = "train") -> pa.Table:
    """Share of machine labels confirmed per label-frequency bin."""
    return compute_stats(catalog, split).by_frequency


def machine_label_precision(
    catalog: Catalog | str = "v7",
    split: str = "train",
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> pa.Table:
    """Per label and confidence threshold: precision of the machine labels kept."""
    return compute_stats(catalog, split, thresholds).precision
