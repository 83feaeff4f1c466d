"""Selections from the mirror sample, with a store of their photos, for build tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from oiforge.build.synthetic import store_file
from oiforge.catalog import open_catalog, select
from oiforge.endpoints import Endpoints
from oiforge.spec import SelectSpec


def select_from_mirror(
    mirror: Any, sample_root: Path, tmp: Path, spec: SelectSpec
) -> tuple[Path, Path]:
    """The selection of ``spec`` from the mirror, and a store holding its photos."""
    with open_catalog("v7", Endpoints.for_mirror(mirror.url), home=tmp / "home") as cat:
        sel = select(spec, catalog=cat)
    path = sel.write(tmp / "selection.parquet")
    ids, splits = (sel.table.column(c).to_pylist() for c in ("image_id", "split"))
    for iid, split in set(zip(ids, splits, strict=True)):
        src = sample_root / "open-images-dataset" / split / f"{iid}.jpg"
        if src.is_file():
            dst = store_file(tmp / "store", iid)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    return path, tmp / "store"
