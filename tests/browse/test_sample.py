"""browse on the mirror sample, offline: real catalog fetch, real download into the store."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .conftest import _Server


@pytest.mark.slow
def test_browse_the_mirror_sample(endpoints: object, tmp_path: Path) -> None:
    from oiforge.browse import create_app
    from oiforge.catalog import open_catalog, select
    from oiforge.download import DownloadConfig, download
    from oiforge.spec import SelectSpec

    with open_catalog("v7", endpoints) as cat:  # type: ignore[arg-type]
        sel = select(SelectSpec(classes=("Cat",), label_mode="box", per_class=6), catalog=cat)
        parquet = sel.write(tmp_path / "sel.parquet")
        store = tmp_path / "store"
        download(parquet, store, DownloadConfig(max_side=256), endpoints)  # type: ignore[arg-type]
        with _Server(create_app(cat, store, tmp_path / "ex.txt", parquet)) as url:
            grid = httpx.get(f"{url}/api/images").json()["images"]
            assert len(grid) == 6 and all(g["boxes"] and g["landing_url"] for g in grid)
            served = [httpx.get(f"{url}/img/{g['image_id']}.jpg").status_code for g in grid]
            assert served.count(200) >= 1  # the sample's fault rules fail some on purpose
            ok = httpx.get(f"{url}/api/images", params={"status": "ok"}).json()["images"]
            assert len(ok) == served.count(200) and all(g["download"] == "ok" for g in ok)
            hits = httpx.get(f"{url}/api/classes", params={"q": "Cat"}).json()
            assert hits[0]["name"] == "Cat" and hits[0]["boxes"] > 0
