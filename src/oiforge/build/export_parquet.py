"""Parquet with image bytes: ``parquet/<split>.parquet``, readable by HF ``datasets``.

The ``image`` column is a struct of ``bytes`` and ``path`` and the schema carries HF feature
metadata, so ``load_dataset("parquet", ...)`` yields decoded images and named labels.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from oiforge.atomic import atomic_open
from oiforge.build.assemble import ExportSample
from oiforge.contracts import DATASET_SPLITS
from oiforge.contracts.dataset import ClassInfo

ROW_GROUP = 256
_SCHEMA = pa.schema(
    [
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("label", pa.int64()),
        ("key", pa.string()),
        ("image_id", pa.string()),
        ("label_mid", pa.string()),
        ("box_index", pa.int32()),
        ("sha256", pa.string()),
    ]
)


def _schema(classes: list[ClassInfo]) -> pa.Schema:
    features = {
        "image": {"_type": "Image"},
        "label": {"_type": "ClassLabel", "names": [c.folder for c in classes]},
        **{k: {"dtype": "string", "_type": "Value"} for k in ("key", "image_id", "label_mid")},
        "box_index": {"dtype": "int32", "_type": "Value"},
        "sha256": {"dtype": "string", "_type": "Value"},
    }
    meta = {"huggingface": json.dumps({"info": {"features": features}})}
    return _SCHEMA.with_metadata(meta)


def _batch(chunk: list[ExportSample], source: Callable[[str], Path], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "image": {"bytes": source(s.key).read_bytes(), "path": f"{s.key}.jpg"},
                "label": s.cls.index,
                "key": s.key,
                "image_id": s.record.image_id,
                "label_mid": s.cls.mid,
                "box_index": s.box_index,
                "sha256": s.sha256,
            }
            for s in chunk
        ],
        schema=schema,
    )


def write_parquet(
    root: Path,
    samples: list[ExportSample],
    source: Callable[[str], Path],
    classes: list[ClassInfo],
) -> dict[str, str]:
    """One Parquet file per split; return key → file path (relative to ``root``)."""
    schema = _schema(classes)
    where: dict[str, str] = {}
    for split in DATASET_SPLITS:
        items = [s for s in samples if s.split == split]
        if not items:
            continue
        rel = f"parquet/{split}.parquet"
        with atomic_open(root / rel, "wb") as fh, pq.ParquetWriter(fh, schema) as writer:
            for start in range(0, len(items), ROW_GROUP):
                writer.write_table(_batch(items[start : start + ROW_GROUP], source, schema))
        where.update({s.key: rel for s in items})
    return where
