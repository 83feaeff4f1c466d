"""Golden files for the contracts: every schema, and the exact bytes of the JSON files.

Regenerate after an intended format change with:  REGEN_GOLDEN=1 .venv/bin/python -m pytest
tests/contracts/test_golden.py  (then review the diff of tests/golden/contracts_*).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pyarrow as pa
from tests.helpers.golden import check_text

from oiforge.contracts import (
    JOURNAL_SCHEMA,
    SELECTION_SCHEMA,
    ClassInfo,
    Journal,
    Labels,
    ModelInfo,
    Preprocessing,
    journal_path,
    manifest_schema,
    selection_schema,
    write_classes,
    write_labels,
)

CLASSES = (
    ClassInfo(0, "Café/Bar", "Café_Bar", "/m/x"),
    ClassInfo(1, "Cat", "Cat", "/m/01yrx"),
)
PRE = Preprocessing(160, "shorter-then-center-crop", 0.875, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _columns(schema: pa.Schema) -> list[str]:
    return [f"{f.name}: {f.type}" for f in schema]


def test_schemas_match_golden(tmp_path: Path) -> None:
    Journal(tmp_path).close()
    with sqlite3.connect(journal_path(tmp_path)) as db:
        table = [f"{r[1]}: {r[2]}" for r in db.execute("PRAGMA table_info(journal)")]
    doc = {
        "selection.parquet": _columns(SELECTION_SCHEMA),
        "selection.parquet with roles": _columns(selection_schema(with_roles=True)),
        "journal (arrow)": _columns(JOURNAL_SCHEMA),
        "journal (sqlite)": table,
        "manifest.parquet singlelabel": _columns(manifest_schema("singlelabel")),
        "manifest.parquet multilabel": _columns(manifest_schema("multilabel")),
    }
    check_text("contracts_schemas.json", json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    assert [r.split(":")[0] for r in table] == JOURNAL_SCHEMA.names


def test_classes_json_bytes(tmp_path: Path) -> None:
    write_classes(tmp_path, CLASSES)
    check_text("contracts_classes.json", (tmp_path / "classes.json").read_text(encoding="utf-8"))
    details = {
        "expand_up": True,
        "negatives_source": "human-verified image labels (Confidence 0)",
        "min_confidence": 0.7,
    }
    write_classes(tmp_path, CLASSES, "multilabel", details)
    text = (tmp_path / "classes.json").read_text(encoding="utf-8")
    check_text("contracts_classes_multilabel.json", text)


def test_labels_json_bytes_before_and_after_export(tmp_path: Path) -> None:
    """Training writes no ``model`` block; export adds one."""
    write_labels(tmp_path / "train.json", Labels(CLASSES, PRE))
    model = ModelInfo("cats", "0123456789ab", "efficientnet_lite0")
    write_labels(tmp_path / "export.json", Labels(CLASSES, PRE, model))
    check_text("contracts_labels_train.json", (tmp_path / "train.json").read_text("utf-8"))
    check_text("contracts_labels_export.json", (tmp_path / "export.json").read_text("utf-8"))
