"""The worst mistakes (confident and wrong), with thumbnails and their attribution.

Attribution comes from the dataset's ``manifest.parquet`` when it is there: a row is matched
by its relative path column when the manifest has one, else by Open Images ImageID (the file
name's stem up to the first ``_``). Without a manifest the gallery still shows the file.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oiforge.evaluate.metrics import Labels, Probs
from oiforge.train.dataset import Sample
from oiforge.train.images import decode_image

log = logging.getLogger(__name__)

PATH_COLUMNS = ("path", "relpath", "file", "filename", "sample_path", "dataset_path")
ATTRIBUTION_COLUMNS = (
    "image_id",
    "author",
    "author_profile_url",
    "license",
    "title",
    "landing_url",
    "original_url",
    "source",
)


@dataclass(frozen=True)
class Mistake:
    key: str
    true_name: str
    predicted_name: str
    confidence: float
    thumbnail_b64: str
    attribution: dict[str, str] = field(default_factory=dict)
    kind: str = ""  # multi-label: "false positive" or "false negative"


def worst_mistakes(probs: Probs, labels: Labels, limit: int) -> list[int]:
    """Row numbers of wrong predictions, most confident first."""
    preds = probs.argmax(axis=1)
    wrong = np.flatnonzero(preds != labels)
    order = np.argsort(-probs[wrong, preds[wrong]], kind="stable")
    return [int(i) for i in wrong[order][:limit]]


def thumbnail_b64(sample: Sample, side: int = 160) -> str:
    """A small JPEG of the sample, base64 (empty if it cannot be decoded)."""
    try:
        image = decode_image(sample.read_bytes(), side)
        image.thumbnail((side, side))
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=80)
        return base64.b64encode(buf.getvalue()).decode("ascii")
    except (OSError, ValueError, SyntaxError):
        return ""


def load_attribution(manifest: Path | None) -> dict[str, dict[str, str]]:
    """Manifest rows keyed by relative path and by image id (both, where present)."""
    if manifest is None:
        return {}
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(manifest)
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", manifest, exc)
        return {}
    names = set(table.column_names)
    wanted = [c for c in (*PATH_COLUMNS, *ATTRIBUTION_COLUMNS) if c in names]
    index: dict[str, dict[str, str]] = {}
    for row in table.select(wanted).to_pylist():
        info = {k: str(v) for k, v in row.items() if k in ATTRIBUTION_COLUMNS and v is not None}
        for col in PATH_COLUMNS:
            if row.get(col):
                index.setdefault(str(row[col]).replace("\\", "/"), info)
        if row.get("image_id"):
            index.setdefault(str(row["image_id"]), info)
    return index


def attribution_for(sample: Sample, index: dict[str, dict[str, str]]) -> dict[str, str]:
    """The manifest row of a sample by path suffix, else by ImageID."""
    if not index:
        return {}
    key = sample.key.replace("\\", "/")
    for candidate in (key, key.split("/", 1)[-1], Path(sample.path).name):
        if candidate in index:
            return index[candidate]
    stem = Path(key).stem.split("_", 1)[0]
    return index.get(stem, {})


def build_gallery(
    probs: Probs,
    labels: Labels,
    samples: Sequence[Sample],
    names: Sequence[str],
    manifest: Path | None,
    limit: int = 12,
) -> list[Mistake]:
    """The ``limit`` worst mistakes, ready for the report."""
    index = load_attribution(manifest)
    out = []
    for row in worst_mistakes(probs, labels, limit):
        sample = samples[row]
        pred = int(probs[row].argmax())
        out.append(
            Mistake(
                key=sample.key,
                true_name=names[int(labels[row])],
                predicted_name=names[pred],
                confidence=float(probs[row, pred]),
                thumbnail_b64=thumbnail_b64(sample),
                attribution=attribution_for(sample, index),
            )
        )
    return out


def as_dict(m: Mistake) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": m.key,
        "true": m.true_name,
        "predicted": m.predicted_name,
        "confidence": m.confidence,
        "attribution": m.attribution,
    }
    if m.kind:  # multi-label: which kind, and the class's probability
        out = {"kind": m.kind, **out, "probability": out.pop("confidence")}
    return out
