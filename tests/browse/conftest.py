"""A live browse app (real uvicorn on 127.0.0.1) over a small catalog, selection and store."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image as PILImage
from tests.catalog.test_select import CAT, DOG, NOFLAGS, PERSON, Image, build

from oiforge.catalog import select
from oiforge.spec import SelectSpec

IMAGES: list[Image] = [
    ("train", [(CAT, 1, None, [NOFLAGS, NOFLAGS])]),
    ("train", [(CAT, 1, None, [NOFLAGS]), (DOG, 1, None, [NOFLAGS])]),
    ("validation", [(DOG, 1, None, [NOFLAGS]), (PERSON, 1, None, [])]),
    ("test", [(CAT, 1, None, [NOFLAGS])]),
]


@dataclass
class Browse:
    url: str
    exclude_list: Path
    image_ids: list[str]


def _jpeg(n: int) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (160, 120), (40 * n % 255, 90, 160)).save(buf, "JPEG")
    return buf.getvalue()


class _Server:
    def __init__(self, app: object) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture()
def browse(tmp_path: Path) -> Iterator[Browse]:
    from oiforge.browse import create_app

    cat = build(tmp_path / "home", IMAGES)
    sel = select(SelectSpec(classes=("Cat", "Dog"), label_mode="box"), catalog=cat)
    parquet = sel.write(tmp_path / "selection.parquet")
    ids = sorted(set(sel.table.column("image_id").to_pylist()))
    store = tmp_path / "store"
    for n, iid in enumerate(ids):
        (store / iid[:2]).mkdir(parents=True, exist_ok=True)
        (store / iid[:2] / f"{iid}.jpg").write_bytes(_jpeg(n))
    ex = tmp_path / "exclude.txt"
    with _Server(create_app(cat, store, ex, parquet)) as url:
        yield Browse(url, ex, ids)
    cat.close()
