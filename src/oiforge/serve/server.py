"""Run the service with uvicorn; SIGTERM/SIGINT stop it gracefully.

On a signal uvicorn stops accepting connections, lets in-flight requests finish (up to
``GRACEFUL_TIMEOUT_S``), then runs the app's shutdown (``/readyz`` answers 503 meanwhile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from oiforge.serve.runner import ServeConfig

GRACEFUL_TIMEOUT_S: Final = 20


def run_server(model: Path, config: ServeConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    from oiforge.serve.app import create_app

    app = create_app(model, config)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_TIMEOUT_S,
        limit_concurrency=256,
        server_header=False,
    )
