"""Golden files for manifest.parquet and attribution.json fields.

Regenerate after an intended change with:  REGEN_GOLDEN=1 .venv/bin/python -m pytest
tests/build/test_build_golden.py  (then review the diff of tests/golden/build_*.json).
Digests depend on the JPEG library, so they are checked for shape and consistency here,
not for value.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from tests.helpers.golden import check_json

from oiforge.build import BuildInputs, build_dataset
from oiforge.build.synthetic import (
    image_id_for,
    photo_like,
    selection_row,
    store_file,
    write_selection,
)
from oiforge.spec import BuildSpec

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _normalise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        row = dict(row)
        for key in ("sha256", "source_sha256"):
            assert HEX64.match(row[key]), row[key]
            row[key] = "<sha256>"
        out.append({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    return out


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    rows = []
    for n, (mid, name) in enumerate(
        [("/m/01yrx", "Cat"), ("/m/0bt9lr", "Dog"), ("/m/x", "Café/Bar")]
    ):
        iid = image_id_for(n)
        store_file(tmp_path / "store", iid).parent.mkdir(parents=True, exist_ok=True)
        store_file(tmp_path / "store", iid).write_bytes(photo_like(n, 320 + 40 * n, 240))
        box = {"box_index": 0, "x_min": 0.1, "x_max": 0.6, "y_min": 0.2, "y_max": 0.9}
        rows.append(selection_row(iid, mid, name, ["train", "validation", "test"][n], **box))
    write_selection(tmp_path / "selection.parquet", rows)
    spec = BuildSpec(size=64, formats=("folders", "webdataset"))
    inputs = BuildInputs(tmp_path / "selection.parquet", tmp_path / "store", tmp_path / "ds", spec)
    return build_dataset(inputs).out


def test_manifest_and_attribution_match_golden(tiny: Path) -> None:
    manifest = pq.read_table(tiny / "manifest.parquet").to_pylist()
    check_json("build_manifest.json", _normalise(manifest))
    check_json("build_attribution.json", json.loads((tiny / "attribution.json").read_text()))
    check_json("build_classes.json", json.loads((tiny / "classes.json").read_text()))
