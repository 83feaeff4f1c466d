"""Serve test helpers: a small training run dir, photo-like images, live servers.

``make_run_dir`` writes a run in the train stage's contract (config.yaml, labels.json,
best.safetensors, metrics.csv) for a small timm model with the train stage's own builders,
so ``oiforge export`` goes through ``oiforge.train.load_trained`` as it does for real runs.
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from oiforge.contracts.run import Preprocessing

CLASSES = [("Cat", "/m/01yrx"), ("Coffee cup", "/m/02p5f1q"), ("Rocket", "/m/09rvcxw")]
PRE = Preprocessing(size=96, crop_pct=0.875, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


ARCH = "efficientnet_lite0"  # the default model (train.models.DEFAULT_MODEL)


def make_run_dir(run: Path) -> Path:
    """A finished training run of an untrained small model, in the train stage's format."""
    import torch
    import yaml
    from safetensors.torch import save_file

    from oiforge.train import TrainConfig
    from oiforge.train.models import create_model

    config = TrainConfig(
        dataset=str(run / "dataset"),
        out=str(run),
        model=ARCH,
        pretrained=False,
        num_classes=len(CLASSES),
        image_size=PRE.size,
        crop_pct=PRE.crop_pct,
    )
    torch.manual_seed(0)
    model = create_model(ARCH, len(CLASSES), pretrained=False, head=config.head)
    run.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, run / "best.safetensors")
    (run / "config.yaml").write_text(yaml.safe_dump(config.model_dump(), sort_keys=False))
    classes = [{"index": i, "name": n, "mid": m} for i, (n, m) in enumerate(CLASSES)]
    labels = {"classes": classes, "preprocessing": PRE.to_json()}
    (run / "labels.json").write_text(json.dumps(labels))
    (run / "metrics.csv").write_text(
        "epoch,train_loss,val_loss,val_acc\n1,1.1,1.0,0.41\n2,0.9,0.95,0.52\n"
    )
    return run


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
