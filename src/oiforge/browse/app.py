"""The FastAPI app behind ``oiforge browse`` (served by uvicorn, as ``serve`` is)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from oiforge.browse.data import class_hits, download_status, filtered, load_images, tree_node
from oiforge.browse.excludes import ExcludeStore
from oiforge.catalog import Catalog
from oiforge.contracts import is_image_id
from oiforge.errors import OiforgeError, UserError

STATIC = Path(__file__).parent / "static"


class Exclusion(BaseModel):
    """One exclusion (or its undo) posted by the page."""

    image_id: str = Field(max_length=64)
    box: int | None = Field(default=None, ge=0, le=100_000)
    reason: str = Field(default="excluded in browse", max_length=500)


def _not_found(what: str) -> HTMLResponse:
    body = f"<!doctype html><title>Not found</title><h1>404</h1><p>{html.escape(what)}</p>"
    return HTMLResponse(body, status_code=404)


def _known(cat: Catalog, mid: str) -> bool:
    try:
        return cat.resolve(mid).mid == mid
    except OiforgeError:
        return mid == cat.hierarchy.root


def create_app(
    cat: Catalog, store: Path, exclude_list: Path, selection: Path | None = None
) -> FastAPI:
    """The browse app over ``cat``, the image ``store``, one ``selection`` and its exclude-list."""
    app = FastAPI(title="oiforge browse", docs_url=None, redoc_url=None)
    excludes = ExcludeStore(exclude_list)
    images = load_images(selection)
    _pages(app, cat, store)
    _api(app, cat, excludes, images, store)
    return app


def _pages(app: FastAPI, cat: Catalog, store: Path) -> None:
    @app.get("/", response_class=HTMLResponse)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/static/{name}")
    def static(name: str) -> Any:
        if name not in {"browse.js", "browse.css"}:
            return _not_found("no such file")
        return FileResponse(STATIC / name)

    @app.get("/class/{mid:path}")
    def class_page(mid: str) -> Any:
        if not _known(cat, mid):
            return _not_found(f"unknown class {mid!r}")
        return FileResponse(STATIC / "index.html")

    @app.get("/img/{name}")
    def image(name: str) -> Any:
        image_id = name.removesuffix(".jpg")
        path = store / image_id[:2] / f"{image_id}.jpg"
        if not is_image_id(image_id) or not path.is_file():
            return _not_found("no such image")
        return FileResponse(path, media_type="image/jpeg")


def _api(
    app: FastAPI, cat: Catalog, excludes: ExcludeStore, images: list[dict[str, Any]], store: Path
) -> None:
    @app.exception_handler(UserError)
    def _user_error(_: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.get("/api/classes")
    def classes(q: str = "") -> list[dict[str, Any]]:
        return class_hits(cat, q[:200])

    @app.get("/api/tree")
    def tree(mid: str = "") -> dict[str, Any]:
        mid = mid or cat.hierarchy.root
        if not _known(cat, mid):
            raise HTTPException(404, f"unknown class {mid!r}")
        return tree_node(cat, mid)

    @app.get("/api/images")
    def grid(cls: str = "", split: str = "", status: str = "") -> dict[str, Any]:
        rows = filtered(images, excludes.read(), download_status(store), (cls, split, status))
        names = sorted({c for img in images for c in img["classes"]})
        return {"images": rows, "classes": names, "total": len(images)}

    @app.post("/api/exclude")
    def exclude(item: Exclusion) -> dict[str, Any]:
        excludes.exclude(item.image_id.lower(), item.box, item.reason)
        return {"ok": True}

    @app.post("/api/undo")
    def undo(item: Exclusion) -> dict[str, Any]:
        excludes.undo(item.image_id.lower(), item.box)
        return {"ok": True}
