"""``/docs``: Swagger UI served by the app itself, so the page works with no network.

The JavaScript and CSS come from the ``swagger-ui-bundle-v2`` wheel (Swagger UI 5, which reads
the OpenAPI 3.1 document FastAPI writes); nothing is fetched from a CDN, the favicon included,
and the online spec validator is off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

ASSETS: Final = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


def swagger_assets() -> Path | None:
    """The folder of the packaged Swagger UI files, or None when the package is missing."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    folder = Path(str(swagger_ui_path))
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def add_offline_docs(app: FastAPI, title: str) -> None:
    """``GET /docs`` and its assets under ``/docs/assets/`` (the app is made with docs_url=None)."""
    folder = swagger_assets()

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if folder is None:
            body = (
                "<!doctype html><title>API docs</title><p>Swagger UI is not installed "
                "(pip install swagger-ui-bundle-v2); the API is described at "
                '<a href="/openapi.json">/openapi.json</a>.</p>'
            )
            return HTMLResponse(body, status_code=503)
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title}: API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True},
        )

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if folder is None or name not in ASSETS:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(folder / name, media_type=ASSETS[name])
