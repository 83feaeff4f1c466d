"""A live browse app (real uvicorn on 127.0.0.1) over a small catalog, selection, store and
download journal: photos of several shapes (512×288, 300×400, ...), a failed download, box
flags, and (in image mode) machine labels to review."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image as PILImage
from PIL import ImageDraw
from tests.catalog.test_select import CAT, DOG, NOFLAGS, PERSON, Image, build

from oiforge.catalog import Catalog, select
from oiforge.spec import SelectSpec

BEAR, CARNIVORE = "/m/01dws", "/m/01lrl"
GROUP, OCCLUDED = (0, 0, 1, 0, 0), (1, 0, 0, 0, 0)
IMAGES: list[Image] = [
    ("train", [(CAT, 1, None, [NOFLAGS, GROUP])]),
    ("train", [(CAT, 1, None, [NOFLAGS]), (DOG, 1, None, [NOFLAGS])]),
    ("validation", [(DOG, 1, None, [OCCLUDED]), (PERSON, 1, None, [])]),
    ("test", [(CAT, 1, None, [NOFLAGS])]),
    ("train", [(DOG, None, 0.8, []), (BEAR, 1, None, [NOFLAGS])]),
    ("validation", [(CAT, None, 0.4, [])]),
    ("train", [(CAT, None, 0.9, [])]),
]
#: stored sizes, in image order: wide, tall, square, ...
SIZES = [(512, 288), (300, 400), (400, 400), (480, 320), (512, 288), (288, 512), (400, 300)]


@dataclass
class Browse:
    url: str
    exclude_list: Path
    review_file: Path
    image_ids: list[str]
    selection: Path
    store: Path
    home: Path
    failed: str  # an ImageID whose download failed (no file in the store)


def _jpeg(n: int, size: tuple[int, int]) -> bytes:
    im = PILImage.new("RGB", size, (40 * n % 255, 90, 160))
    ImageDraw.Draw(im).ellipse((size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2), "yellow")
    buf = io.BytesIO()
    im.save(buf, "JPEG")
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


def fill_store(store: Path, ids: list[str], failed: str) -> None:
    """JPEGs for every image but ``failed``, and a journal that says so."""
    from oiforge.contracts.journal import Journal, JournalRow

    rows = []
    for n, iid in enumerate(ids):
        w, h = SIZES[n % len(SIZES)]
        if iid == failed:
            rows.append(JournalRow(iid, "http_404", error="404 Not Found", attempts=1))
            continue
        (store / iid[:2]).mkdir(parents=True, exist_ok=True)
        (store / iid[:2] / f"{iid}.jpg").write_bytes(_jpeg(n, (w, h)))
        rows.append(JournalRow(iid, "ok", width=w, height=h, attempts=1))
    with Journal(store) as journal:
        journal.append(rows)


def _spec(mode: str) -> SelectSpec:
    if mode == "box":
        return SelectSpec(classes=("Cat", "Dog", "Bear"), label_mode="box")
    return SelectSpec(classes=("Cat", "Dog"), min_confidence=0.3, multi_label="multi")


@pytest.fixture()
def make_browse(tmp_path: Path) -> Iterator[Callable[[str], Browse]]:
    """``make_browse("box" | "image")``: a running app over that selection mode."""
    from oiforge.browse import create_app

    cats: list[Catalog] = []
    servers: list[_Server] = []

    def make(mode: str) -> Browse:
        home = tmp_path / "home"
        cat = build(home, IMAGES)
        cats.append(cat)
        sel = select(_spec(mode), catalog=cat)
        parquet = sel.write(tmp_path / f"selection-{mode}.parquet")
        ids = sorted(set(sel.table.column("image_id").to_pylist()))
        store = tmp_path / f"store-{mode}"
        failed = ids[-1]
        fill_store(store, ids, failed)
        ex, rv = tmp_path / "exclude.txt", tmp_path / "review.csv"
        server = _Server(create_app(cat, store, ex, parquet, rv))
        servers.append(server)
        url = server.__enter__()
        return Browse(url, ex, rv, ids, parquet, store, home, failed)

    yield make
    for s in servers:
        s.__exit__()
    for c in cats:
        c.close()


@pytest.fixture()
def browse(make_browse: Callable[[str], Browse]) -> Browse:
    return make_browse("box")
