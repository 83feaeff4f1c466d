"""Download → build keeps photos upright whether or not the downloader re-encoded them.

The downloader turns pixels upright when it resizes (EXIF / Rotation) and records it in the
journal (``rotated``); the build must then not apply Open Images' Rotation a second time.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

from oiforge.build import BuildInputs, build_dataset
from oiforge.catalog import open_catalog, select
from oiforge.download import DownloadConfig, download
from oiforge.endpoints import Endpoints
from oiforge.spec import parse_spec

pytestmark = pytest.mark.slow


def _shapes(dataset: Path) -> dict[str, bool]:
    """ImageID → is the exported image wider than tall."""
    out = {}
    for path in dataset.glob("*/*/*.jpg"):
        with Image.open(path) as im:
            out[path.stem] = im.width > im.height
    return out


def test_rotated_photos_stay_upright_with_and_without_resize(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    spec = parse_spec({"classes": ["Cat", "Dog", "Zebra", "Apple", "Owl", "Tiger"]})
    cat = open_catalog("v7", endpoints=endpoints)
    table = select(spec, catalog=cat).table
    rotated = table.filter(pc.is_in(table.column("rotation"), pc.cast([90.0, 270.0], "float32")))
    if rotated.num_rows == 0:
        pytest.skip("the sample has no rotated photo among these classes")
    sel = tmp_path / "rotated.parquet"
    pq.write_table(rotated, sel)
    shapes = []
    for name, max_side in (("served", None), ("resized", 300)):
        store, out = tmp_path / f"store-{name}", tmp_path / f"ds-{name}"
        download(sel, store, DownloadConfig(max_side=max_side), endpoints)
        build_dataset(BuildInputs(selection=sel, store=store, out=out, workers=1))
        shapes.append(_shapes(out))
    assert shapes[0] and shapes[0] == shapes[1]
