"""Export (ONNX parity, labels, card) and `oiforge predict` through the CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from tests.helpers.serve import ARCH, CLASSES, PRE, photo
from typer.testing import CliRunner

from oiforge.cli import app
from oiforge.contracts.run import read_labels
from oiforge.serve.images import center_box, preprocess_bytes, resized_size
from oiforge.serve.predictor import Predictor

runner = CliRunner()


def test_export_writes_onnx_labels_card_with_dynamic_batch(exported: Path) -> None:
    import onnx

    graph = onnx.load(str(exported / "model.onnx")).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    labels = read_labels(exported / "labels.json")
    assert [(c.name, c.mid) for c in labels.classes] == CLASSES
    assert labels.preprocessing == PRE
    card = (exported / "MODEL.md").read_text()
    for section in ("## Intended use", "## Limits", "## Licences", "## Metrics", "/m/01yrx"):
        assert section in card
    assert "val_acc: 0.52" in card and ARCH in card
    assert labels.model.name == "cats-vs-cups" and labels.model.architecture == ARCH


@pytest.mark.slow
def test_onnx_matches_torch_within_1e4_on_real_photos(exported: Path, run_dir: Path) -> None:
    import torch
    from skimage import data

    from oiforge.train import load_trained

    model = load_trained(run_dir).model
    photos = [data.chelsea(), data.coffee(), data.rocket(), data.astronaut()]
    inputs = []
    for arr in photos:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG")
        inputs.append(preprocess_bytes(buf.getvalue(), PRE)[0])
    batch = np.stack(inputs)
    with torch.no_grad():
        expected = model(torch.from_numpy(batch)).numpy()  # type: ignore[operator]
    got = Predictor(exported).logits(batch)
    assert np.max(np.abs(expected - got)) < 1e-4


def _train_eval_reference(data: bytes) -> np.ndarray:
    """The train stage's eval path (draft decode + torchvision v2), rebuilt with torch."""
    import torch
    from torchvision.transforms import v2

    img = Image.open(io.BytesIO(data))
    if img.format == "JPEG":
        img.draft("RGB", (PRE.size, PRE.size))
    img = img.convert("RGB")
    transform = v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(max(PRE.size, int(PRE.size / PRE.crop_pct)), antialias=True),
            v2.CenterCrop(PRE.size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(PRE.mean), list(PRE.std)),
        ]
    )
    return np.asarray(transform(img).numpy())


@pytest.mark.parametrize(
    ("size", "fmt", "mode"),
    [
        ((160, 120), "JPEG", "RGB"),
        ((97, 301), "PNG", "RGBA"),
        ((1, 1), "PNG", "RGB"),
        ((1024, 768), "JPEG", "RGB"),
        ((640, 480), "JPEG", "CMYK"),
        ((300, 200), "PNG", "L"),
    ],
)
def test_preprocessing_matches_training_within_one_grey_level(
    size: tuple[int, int], fmt: str, mode: str
) -> None:
    data = photo(*size, mode=mode, fmt=fmt)
    ours = preprocess_bytes(data, PRE)[0]
    theirs = _train_eval_reference(data)
    assert ours.shape == theirs.shape == (3, PRE.size, PRE.size)
    levels = np.abs(ours - theirs) * np.asarray(PRE.std, dtype=np.float32)[:, None, None] * 255
    # Pillow's and torch's uint8 antialiased bilinear kernels round a few pixels differently
    assert levels.max() <= 1.0 + 1e-3 and (levels > 0.5).mean() < 0.01


@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(8, 512))
@settings(max_examples=200, deadline=None)
def test_resize_then_crop_geometry(w: int, h: int, size: int) -> None:
    short = int(size / 0.875)
    rw, rh = resized_size(w, h, short)
    assert min(rw, rh) == short and max(rw, rh) >= short
    left, top, right, bottom = center_box(rw, rh, size)
    assert left >= 0 and top >= 0 and right <= rw and bottom <= rh
    assert (right - left, bottom - top) == (size, size)


def _images(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(photo(200, 150))
    (folder / "sub" / "b.png").write_bytes(photo(90, 300, mode="RGBA", fmt="PNG"))
    (folder / "broken.jpg").write_bytes(photo(200, 150)[:300])
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_predict_json_folder_with_per_item_failures(exported: Path, tmp_path: Path) -> None:
    folder = _images(tmp_path)
    missing = str(tmp_path / "missing.jpg")
    result = runner.invoke(
        app, ["predict", str(exported), str(folder), missing, "--json", "-k", "2"]
    )
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    by_name = {Path(i["source"]).name: i for i in items}
    assert set(by_name) == {"a.jpg", "b.png", "broken.jpg", "missing.jpg"}
    assert by_name["broken.jpg"]["status"] == "invalid_image"
    assert by_name["missing.jpg"]["status"] == "not_found"
    ok = by_name["a.jpg"]
    assert ok["status"] == "ok" and len(ok["top_k"]) == 2
    probs = [s["probability"] for s in ok["top_k"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_predict_csv_and_glob(exported: Path, tmp_path: Path) -> None:
    folder = _images(tmp_path)
    result = runner.invoke(
        app, ["predict", str(exported / "model.onnx"), f"{folder}/**/*.png", "--csv"]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 3 and {r["name"] for r in rows} == {n for n, _ in CLASSES}


def test_predict_bad_model_path_is_a_user_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["predict", str(tmp_path), "x.jpg"])
    assert result.exit_code == 2 and "oiforge export" in result.output


def test_predict_path_never_imports_torch(exported: Path, tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes(photo())
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from oiforge.cli import app\n"
        f"r = CliRunner().invoke(app, ['predict', {str(exported)!r}, {str(image)!r}, '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('no-torch-ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "no-torch-ok" in out.stdout, out.stderr


def test_export_refuses_what_is_not_a_finished_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(tmp_path)])
    assert result.exit_code == 1 and "config.yaml" in result.output
    assert not (tmp_path / "model.onnx").exists()
