"""Screenshots of every page a person sees, from a finished demo, into docs/img/.

    OUT=/tmp/oiforge-demo bash scripts/demo.sh
    .venv/bin/python scripts/web_screenshots.py /tmp/oiforge-demo

browse (grid, detail view, review mode) over the demo's catalog and store, report.html,
the contact sheet, and `oiforge serve`'s page and /docs over the demo's model; headless
Debian Chromium through playwright, nothing fetched beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1] / "docs" / "img"
CLASSES = ("Apple", "Cat", "Dog", "Zebra", "Strawberry", "Penguin")


class Server:
    """uvicorn on a free 127.0.0.1 port, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def stored_selection(cat: Any, store: Path, tmp: Path, name: str, **spec: Any) -> Path:
    """A selection of the demo's classes, kept to the images the demo's download tried."""
    import pyarrow.compute as pc

    from oiforge.catalog import select
    from oiforge.download import read_journal
    from oiforge.spec import SelectSpec

    sel = select(SelectSpec(classes=CLASSES, **spec), catalog=cat)
    tried = read_journal(store).column("image_id")
    sel.table = sel.table.filter(pc.is_in(sel.table.column("image_id"), value_set=tried))
    return sel.write(tmp / f"{name}.parquet")


def shoot(page: Any, url: str, name: str, wait: str, full: bool = False) -> None:
    page.goto(url)
    page.wait_for_selector(wait)
    page.wait_for_timeout(600)  # lazy thumbnails
    kind = "jpeg" if name.endswith(".jpg") else "png"  # photos as JPEG: a third of the bytes
    page.screenshot(
        path=str(DOCS / name), full_page=full, type=kind, quality=82 if kind == "jpeg" else None
    )
    print("wrote", DOCS / name)


def browse_pages(out: Path, browser: Any, tmp: Path) -> None:
    from oiforge.browse import create_app
    from oiforge.catalog import open_catalog

    store = out / "store"
    with open_catalog("v7", fetch_missing=False) as cat:
        boxes = stored_selection(cat, store, tmp, "boxes", label_mode="box")
        machine = stored_selection(cat, store, tmp, "machine", min_confidence=0.5)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        with Server(create_app(cat, store, tmp / "exclude.txt", boxes)) as url:
            shoot(page, url + "/", "browse-grid.jpg", "#grid .tile img")
            first = page.locator("#grid .tile").nth(1).get_attribute("data-id")
            shoot(page, f"{url}/?img={first}", "browse-detail.jpg", "#d-pic img")
        with Server(create_app(cat, store, tmp / "exclude.txt", machine)) as url:
            view = "/?mode=review&src=machine&rv=unreviewed"
            shoot(page, url + view, "browse-review.jpg", "#grid .tile img")
        page.close()


def serve_pages(out: Path, browser: Any) -> None:
    from oiforge.serve.app import create_app

    photo = sorted((out / "dataset" / "test").rglob("*.jpg"))[0]
    page = browser.new_page(viewport={"width": 900, "height": 640})
    with Server(create_app(out / "run")) as url:
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('model').textContent.includes('classes')")
        page.set_input_files("#file", str(photo))
        page.wait_for_selector("#bars .row")
        page.screenshot(path=str(DOCS / "serve-page.png"))
        print("wrote", DOCS / "serve-page.png")
        page.set_viewport_size({"width": 1100, "height": 800})
        shoot(page, url + "/docs", "serve-docs.png", ".opblock-summary-path")
    page.close()


def file_pages(out: Path, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    shoot(page, (out / "run" / "report.html").as_uri(), "report.png", "h1")
    shoot(page, (out / "dataset" / "contact_sheet.html").as_uri(), "contact-sheet.jpg", ".tile")
    page.close()


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    os.environ["OIFORGE_HOME"] = str(out / "home")
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        browse_pages(out, browser, Path(tmp))
        serve_pages(out, browser)
        file_pages(out, browser)
        browser.close()


if __name__ == "__main__":
    main()
