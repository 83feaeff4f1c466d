"""Greyscale, 16-bit, palette, transparent, CMYK, 20:1 and 8x8 images: written as real files
here, then trained on, evaluated, and preprocessed for serving the same way."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oiforge.pixels import to_rgb
from oiforge.progress import Notice
from oiforge.train import build_config, run_training

from .synthetic import draw_image


def _files(label: int, seed: int) -> dict[str, bytes]:
    """One file of each unusual kind, showing this class's drawing."""
    import random

    rgb = draw_image(label, random.Random(seed), (96, 80))
    out: dict[str, bytes] = {}

    def save(name: str, img: Image.Image, fmt: str, **kw: object) -> None:
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        out[name] = buf.getvalue()

    grey = rgb.convert("L")
    save("grey.jpg", grey, "JPEG")
    sixteen = Image.fromarray((np.asarray(grey, dtype=np.uint16) * 257).astype(np.uint16))
    save("sixteen.png", sixteen, "PNG")
    save("sixteen.tif", sixteen, "TIFF")
    save("palette.png", rgb.convert("P", palette=Image.Palette.ADAPTIVE), "PNG")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(200)
    save("alpha.png", rgba, "PNG")
    save("cmyk.jpg", rgb.convert("CMYK"), "JPEG")
    save("wide.png", rgb.resize((400, 20)), "PNG")
    save("tiny.png", rgb.resize((8, 8)), "PNG")
    return out


@pytest.fixture(scope="module")
def unusual(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unusual") / "ds"
    for split, seeds in (("train", range(3)), ("val", range(10, 11)), ("test", range(20, 21))):
        for label in (0, 1):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for seed in seeds:
                for name, data in _files(label, seed * 7 + label).items():
                    stem, ext = name.split(".")
                    (folder / f"{seed:08x}{label:08x}_{stem}.{ext}").write_bytes(data)
    return root


def test_sixteen_bit_is_scaled_and_transparency_lands_on_white() -> None:
    sixteen = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16))
    assert sixteen.mode.startswith("I;16")
    assert np.asarray(to_rgb(sixteen))[0, :, 0].tolist() == [0, 128, 255]
    clear = Image.new("RGBA", (2, 1), (10, 20, 30, 0))
    assert np.asarray(to_rgb(clear))[0, 0].tolist() == [255, 255, 255]
    half = Image.new("LA", (1, 1), (0, 128))
    assert 120 <= int(np.asarray(to_rgb(half))[0, 0, 0]) <= 135


@pytest.mark.slow
def test_training_and_evaluation_take_them_and_say_so(unusual: Path, tmp_path: Path) -> None:
    from oiforge.evaluate import run_evaluation

    config = build_config(dataset=str(unusual), out=str(tmp_path / "r"), mode="probe",
                          image_size=32, epochs=2, workers=0)  # fmt: skip
    events = list(run_training(config))
    notes = " | ".join(e.text for e in events if isinstance(e, Notice))
    assert "could not be decoded" not in notes
    for kind in ("16-bit", "CMYK", "greyscale", "palette", "transparent", "tiny", "elongated"):
        assert kind in notes, kind
    assert (tmp_path / "r" / "best.safetensors").is_file()
    evaluated = list(run_evaluation(tmp_path / "r", workers=0))
    assert any(isinstance(e, Notice) and "16-bit" in e.text for e in evaluated)


@pytest.mark.parametrize("name", list(_files(0, 0)))
def test_serve_preprocesses_them_as_training_does(name: str) -> None:
    import torch

    from oiforge.contracts.run import Preprocessing
    from oiforge.serve.images import preprocess_bytes
    from oiforge.train.images import decode_image, eval_transform

    data = _files(1, 3)[name]
    pre = Preprocessing(size=32, crop_pct=0.875, mean=(0.5,) * 3, std=(0.5,) * 3)
    served, decoded = preprocess_bytes(data, pre)
    assert decoded.image.mode == "RGB"
    prep = {"size": 32, "crop_pct": 0.875, "mean": [0.5] * 3, "std": [0.5] * 3}
    trained = eval_transform(prep)(decode_image(data, 36))
    assert isinstance(trained, torch.Tensor) and served.shape == tuple(trained.shape)
    assert float(np.abs(served - trained.numpy()).mean()) < 0.02  # resize kernels differ a hair
