"""``write_stats``: the tables as CSV, the headline numbers as JSON, the charts as PNG.

Every file is written atomically (temp + fsync + rename), so a crash never leaves half a CSV.
"""

from __future__ import annotations

import importlib.util
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from oiforge.atomic import write_bytes_atomic, write_text_atomic
from oiforge.errors import InvalidInputError, UserError
from oiforge.stats import charts
from oiforge.stats.compute import LabelStats

#: file name -> LabelStats attribute
CSV_FILES: Final = {
    "label_frequency.csv": "frequency",
    "machine_confirmation.csv": "confirmation",
    "confirmation_by_confidence.csv": "by_confidence",
    "confirmation_by_frequency.csv": "by_frequency",
    "machine_precision.csv": "precision",
}
CHART_FILES: Final = (
    "label_frequency.png",
    "confirmation_vs_frequency.png",
    "confirmation_vs_confidence.png",
    "precision_at_thresholds.png",
)
#: labels drawn one by one in the precision chart when none are named
TOP_LABELS: Final = 8


@dataclass(frozen=True)
class StatsFiles:
    """What :func:`write_stats` wrote."""

    out: Path
    tables: tuple[Path, ...]
    charts: tuple[Path, ...]
    summary: Path


def _csv_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    return buf.getvalue()


def most_verified(confirmation: pa.Table, n: int = TOP_LABELS) -> list[str]:
    """The MIDs of the ``n`` labels with the most verified machine labels."""
    top = confirmation.filter(pc.greater(confirmation["verified"], 0))
    top = top.sort_by([("verified", "descending"), ("label_mid", "ascending")]).slice(0, n)
    return [str(m) for m in top.column("label_mid").to_pylist()]


def write_stats(
    stats: LabelStats, out: str | Path, mids: Sequence[str] = (), with_charts: bool = True
) -> StatsFiles:
    """Write the CSVs, ``stats.json`` and (unless told not to) the PNG charts under ``out``.

    ``mids`` are the labels drawn one by one in the precision chart (default: the most
    verified ones).
    """
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise InvalidInputError(f"the output {root} is a file; name a folder for the statistics")
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for name, attr in CSV_FILES.items():
        write_bytes_atomic(root / name, _csv_bytes(getattr(stats, attr)))
        written.append(root / name)
    pngs: list[Path] = []
    if with_charts:
        pngs = _write_charts(stats, root, list(mids) or most_verified(stats.confirmation))
    summary = root / "stats.json"
    write_text_atomic(summary, json.dumps(stats.summary(), indent=1) + "\n")
    return StatsFiles(root, tuple(written), tuple(pngs), summary)


def _write_charts(stats: LabelStats, root: Path, mids: list[str]) -> list[Path]:
    if importlib.util.find_spec("matplotlib") is None:
        raise UserError("charts need matplotlib: pip install 'oiforge[stats]', or --no-charts")
    images = (
        charts.frequency_chart(stats.frequency, stats.split),
        charts.confirmation_vs_frequency_chart(stats.confirmation, stats.by_frequency),
        charts.confirmation_vs_confidence_chart(stats.by_confidence),
        charts.precision_chart(stats.precision, mids),
    )
    paths = []
    for name, data in zip(CHART_FILES, images, strict=True):
        write_bytes_atomic(root / name, data)
        paths.append(root / name)
    return paths
