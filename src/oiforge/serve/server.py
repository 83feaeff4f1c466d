"""Run the service with uvicorn; SIGTERM/SIGINT stop it gracefully.

On a signal uvicorn stops accepting connections, lets in-flight requests finish (up to
``GRACEFUL_TIMEOUT_S``), then runs the app's shutdown (``/readyz`` answers 503 meanwhile).
"""

from __future__ import annotations

from pathlib import Path
from types import FrameType
from typing import Final

from oiforge.serve.holder import ServeConfig

GRACEFUL_TIMEOUT_S: Final = 20


def run_server(model: Path, config: ServeConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    from oiforge.serve.app import create_app

    app = create_app(model, config)
    holder = app.state.holder

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            holder.draining = True  # readiness fails first, so balancers stop sending work
            super().handle_exit(sig, frame)

    uv_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_TIMEOUT_S,
        limit_concurrency=256,
        server_header=False,
    )
    DrainingServer(uv_config).run()
