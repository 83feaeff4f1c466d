"""The FastAPI app behind ``oiforge browse`` (served by uvicorn, as ``serve`` is).

Pages: ``/`` (the whole app; its view lives in the URL's query string), ``/class/<MID>`` (the
same page on a class), ``/img/<id>.jpg`` (a store image) and ``/thumb/<id>.jpg`` (its grid
thumbnail). The JSON API under ``/api/`` is what the page calls; every write goes to the
exclude-list or the review file (see ``excludes.py``).
"""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from oiforge.browse.classes import (
    class_mids,
    search_classes,
    selection_classes,
    selection_counts,
    tree_node,
)
from oiforge.browse.excludes import ExcludeStore, ReviewStore
from oiforge.browse.index import ImageIndex
from oiforge.browse.thumbs import thumbnail
from oiforge.browse.view import Browser, Filters
from oiforge.catalog import Catalog
from oiforge.contracts import is_image_id
from oiforge.errors import OiforgeError, UserError
from oiforge.paths import package_data

STATIC = Path(__file__).parent / "static"
_FILES: Final = {
    "browse.js": STATIC / "browse.js",
    "browse.css": STATIC / "browse.css",
    "oiforge.css": package_data("web", "oiforge.css"),
}


class Item(BaseModel):
    """An image (or one box of it) and, for ``/api/excludes``, its new reason (null: none)."""

    image_id: str = Field(max_length=64)
    box: int | None = Field(default=None, ge=0, le=100_000)
    reason: str | None = Field(default=None, max_length=500)


class Exclusion(BaseModel):
    """One exclusion (or its undo) posted by the page, or many at once (``items``)."""

    image_id: str = Field(default="", max_length=64)
    box: int | None = Field(default=None, ge=0, le=100_000)
    reason: str = Field(default="excluded in browse", max_length=500)
    items: list[Item] = Field(default_factory=list, max_length=10_000)

    def targets(self) -> list[tuple[str, int | None]]:
        items = [(i.image_id.lower(), i.box) for i in self.items]
        return items or [(self.image_id.lower(), self.box)]


class Verdict(BaseModel):
    image_id: str = Field(max_length=64)
    mid: str = Field(max_length=64)
    verdict: str = Field(default="", max_length=16)  # confirmed, rejected, or "" (none)


class Verdicts(BaseModel):
    items: list[Verdict] = Field(max_length=10_000)


def _not_found(what: str) -> HTMLResponse:
    body = f"<!doctype html><title>Not found</title><h1>404</h1><p>{html.escape(what)}</p>"
    return HTMLResponse(body, status_code=404)


def _known(cat: Catalog, mid: str) -> bool:
    try:
        return cat.resolve(mid).mid == mid
    except OiforgeError:
        return mid == cat.hierarchy.root


def create_app(
    cat: Catalog,
    store: Path,
    exclude_list: Path,
    selection: Path | None = None,
    review_file: Path | None = None,
) -> FastAPI:
    """The browse app over ``cat``, the image ``store``, one ``selection``, its exclude-list
    and its label review file (``review.csv`` beside the exclude-list unless given)."""
    app = FastAPI(title="oiforge browse", docs_url=None, redoc_url=None, openapi_url=None)
    index = ImageIndex.load(selection)
    reviews = ReviewStore(review_file or exclude_list.with_name("review.csv"))
    browser = Browser(index, store, ExcludeStore(exclude_list), reviews)
    _errors(app)
    _pages(app, cat, store)
    _read_api(app, cat, browser)
    _write_api(app, browser)
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(UserError)
    def _user_error(_: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()[:3]
        ]
        return JSONResponse({"error": "; ".join(parts) or "invalid request"}, status_code=422)


def _pages(app: FastAPI, cat: Catalog, store: Path) -> None:
    @app.get("/", response_class=HTMLResponse)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/static/{name}")
    def static(name: str) -> Any:
        if name not in _FILES:
            return _not_found("no such file")
        return FileResponse(_FILES[name])

    @app.get("/class/{mid:path}")
    def class_page(mid: str) -> Any:
        if not _known(cat, mid):
            return _not_found(f"unknown class {mid[:80]!r}")
        return FileResponse(STATIC / "index.html")

    def stored(name: str) -> Path | None:
        image_id = name.removesuffix(".jpg")
        path = store / image_id[:2] / f"{image_id}.jpg"
        return path if is_image_id(image_id) and path.is_file() else None

    @app.get("/img/{name}")
    def image(name: str) -> Any:
        path = stored(name)
        return FileResponse(path, media_type="image/jpeg") if path else _not_found("no image")

    @app.get("/thumb/{name}")
    def thumb(name: str) -> Any:
        path = stored(name)
        data = thumbnail(path) if path else None
        if data is None:
            return _not_found("no image")
        headers = {"Cache-Control": "private, max-age=3600"}
        return Response(data, media_type="image/jpeg", headers=headers)


def _class_codes(cat: Catalog, browser: Browser, cls: str) -> Any:
    """Label codes of a class filter (a MID or a name: it and its descendants)."""
    if not cls:
        return None
    mid = cls if cls.startswith("/") else cat.resolve(cls).mid
    return browser.index.label_codes(class_mids(cat, mid))


def _filters(
    split: str, dl: str, ex: str, flags: str, src: str, cmin: float, cmax: float, rv: str, q: str
) -> Filters:
    chosen = tuple(f for f in flags.split(",") if f)
    return Filters("", split, dl, ex, chosen, src, cmin, cmax, rv, q[:200])


def _read_api(app: FastAPI, cat: Catalog, browser: Browser) -> None:
    @app.get("/api/classes")
    def classes(q: str = "") -> list[dict[str, Any]]:
        hits = search_classes(cat, browser.index, q)
        rows = cat.class_counts([h["mid"] for h in hits]).to_pylist() if hits else []
        totals = {r["label_mid"]: _catalog_totals(r) for r in rows}
        zero = {"positives": 0, "boxes": 0}
        return [{**h, **totals.get(h["mid"], zero)} for h in hits]

    @lru_cache(maxsize=1024)  # the hierarchy and the selection never change under the app
    def node(mid: str) -> dict[str, Any]:
        return tree_node(cat, browser.index, mid)

    @app.get("/api/tree")
    def tree(mid: str = "") -> Any:
        mid = mid or cat.hierarchy.root
        if not _known(cat, mid):
            return JSONResponse({"error": f"unknown class {mid[:80]!r}"}, status_code=404)
        return node(mid)

    @app.get("/api/selection")
    def selection() -> dict[str, Any]:
        return {"images": len(browser.index), "classes": selection_classes(browser.index)}

    @app.get("/api/images")
    def grid(
        cls: str = "",
        split: str = "",
        dl: str = "",
        ex: str = "",
        flags: str = "",
        src: str = "",
        cmin: float = Query(0.0, ge=0, le=1),
        cmax: float = Query(1.0, ge=0, le=1),
        rv: str = "",
        q: str = "",
        status: str = "",
        page: int = Query(0, ge=0),
        size: int = Query(100, ge=1, le=500),
    ) -> JSONResponse:
        if status:  # the first version's one filter: included/excluded or a download status
            ex = {"excluded": "yes", "included": "no"}.get(status, ex)
            dl = dl if status in ("excluded", "included") else status
        f = _filters(split, dl, ex, flags, src, cmin, cmax, rv, q)
        codes = _class_codes(cat, browser, cls)
        out = browser.page(f, codes, page, size)
        if cls:
            mid = cls if cls.startswith("/") else cat.resolve(cls).mid
            out["class"] = {"mid": mid, "name": cat.name(mid)}
            out["class_mids"] = [browser.index.mids[c] for c in codes.tolist()]
        return JSONResponse(out)  # plain json.dumps: FastAPI's encoder walk costs ~18 ms a page

    @app.get("/api/image/{image_id}")
    def one(image_id: str) -> Any:
        pos = browser.index.position.get(image_id.lower())
        if pos is None:
            return JSONResponse({"error": "no such image in the selection"}, status_code=404)
        ex, _ = browser.sync()
        return browser.images_json(np.array([pos]), ex)[0]

    @app.get("/api/counts")
    def counts(mids: str = "") -> dict[str, int]:
        return selection_counts(cat, browser.index, [m for m in mids.split(",") if m][:200])


def _catalog_totals(row: dict[str, Any]) -> dict[str, int]:
    return {
        kind: sum(int(v or 0) for k, v in row.items() if k.startswith(f"{kind}_"))
        for kind in ("positives", "boxes")
    }


def _write_api(app: FastAPI, browser: Browser) -> None:
    @app.post("/api/exclude")
    def exclude(item: Exclusion) -> dict[str, Any]:
        before = _previous(browser, item.targets())
        browser.excludes.exclude_many(item.targets(), item.reason)
        return {"ok": True, "previous": before}

    @app.post("/api/undo")
    def undo(item: Exclusion) -> dict[str, Any]:
        before = _previous(browser, item.targets())
        browser.excludes.undo_many(item.targets())
        return {"ok": True, "previous": before}

    @app.post("/api/excludes")
    def set_excludes(body: Exclusion) -> dict[str, Any]:
        """Set each item's state exactly (``reason`` null: not excluded); for undo."""
        on = [i for i in body.items if i.reason is not None]
        off = [(i.image_id.lower(), i.box) for i in body.items if i.reason is None]
        for reason in sorted({str(i.reason) for i in on}):
            targets = [(i.image_id.lower(), i.box) for i in on if i.reason == reason]
            browser.excludes.exclude_many(targets, reason)
        if off:
            browser.excludes.undo_many(off)
        return {"ok": True}

    @app.post("/api/review")
    def review(body: Verdicts) -> dict[str, Any]:
        before = browser.reviews.read()
        items = [_review_item(browser, v) for v in body.items]
        browser.reviews.set_many(items)
        previous = [
            {"image_id": i, "mid": m, "verdict": before.get((i, m), ("",))[0]} for i, m, *_ in items
        ]
        return {"ok": True, "previous": previous}


def _review_item(browser: Browser, v: Verdict) -> tuple[str, str, str, str, float]:
    image_id = v.image_id.lower()
    name = browser.index.names.get(v.mid, v.mid)
    conf = 1.0
    pos = browser.index.position.get(image_id)
    if pos is not None:
        a, b = int(browser.index.starts[pos]), int(browser.index.starts[pos + 1])
        codes = browser.index.label_codes({v.mid})
        hit = np.flatnonzero(np.isin(browser.index.label[a:b], codes))
        conf = float(browser.index.conf[a + hit[0]]) if len(hit) else conf
    return image_id, v.mid, v.verdict, name, conf


def _previous(browser: Browser, items: list[tuple[str, int | None]]) -> list[dict[str, Any]]:
    """Each item's exclusion reason before a change (null: not excluded), for undo."""
    ex = browser.excludes.read()
    return [
        {
            "image_id": i,
            "box": b,
            "reason": ex.images.get(i) if b is None else ex.boxes.get((i, b)),
        }
        for i, b in items
    ]
