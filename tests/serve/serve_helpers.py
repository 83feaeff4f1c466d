"""Serve test helpers: a small model in the train contract's format and photo-like images.

Until ``oiforge.train.load_trained`` exists, the run is built here in the train stage's
contract format from a small timm model, and exported with ``export_model``.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from oiforge.serve.labels import ClassInfo, Labels, ModelInfo, Preprocessing

CLASSES = [("Cat", "/m/01yrx"), ("Coffee cup", "/m/02p5f1q"), ("Rocket", "/m/09rvcxw")]
PRE = Preprocessing(size=96, crop_pct=0.875, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def small_model() -> object:
    import timm
    import torch

    torch.manual_seed(0)
    return timm.create_model("mobilenetv3_small_050", num_classes=len(CLASSES)).eval()


def small_labels() -> Labels:
    classes = tuple(ClassInfo(i, n, m) for i, (n, m) in enumerate(CLASSES))
    return Labels(classes, PRE, ModelInfo("test-run", "x", "mobilenetv3_small_050"))


def photo(width: int = 160, height: int = 120, mode: str = "RGB", fmt: str = "JPEG") -> bytes:
    """A smooth photo-like image (gradients + noise) encoded as bytes."""
    rng = np.random.default_rng(width * 7 + height)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / max(width, 1), y * 255 / max(height, 1), (x + y) % 256], axis=-1)
    noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(noisy, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


class LiveServer:
    """A real uvicorn server for an ASGI app on 127.0.0.1 (free port), in a thread."""

    def __init__(self, app: object) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> LiveServer:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def wait_ready(url: str, headers: dict[str, str] | None = None) -> None:
    import httpx

    for _ in range(600):
        if httpx.get(f"{url}/readyz", headers=headers).status_code == 200:
            return
        time.sleep(0.05)
    raise RuntimeError("model never became ready")


class StaticFiles:
    """A plain http.server over a folder on 127.0.0.1 (for URL inputs)."""

    def __init__(self, root: Path) -> None:
        import functools
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

        handler = functools.partial(Quiet, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StaticFiles:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def huge_png(width: int = 20000, height: int = 20000) -> bytes:
    """A real, valid 1-bit PNG of width×height (a decompression bomb: tiny file, huge image)."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
