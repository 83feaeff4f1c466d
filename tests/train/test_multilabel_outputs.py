"""What a multi-label run gives its users (#20): ``oiforge evaluate`` (Open Images AP over
verified labels, thresholds chosen on val, predictions.csv, report), ``oiforge export``
(ONNX ending in a sigmoid, labels.json with task and thresholds), ``oiforge predict`` and
``POST /v1/predict`` (every label above its threshold), and the task-mismatch errors."""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from tests.helpers.multilabel import draw_scene
from tests.helpers.serve import LiveServer, wait_ready
from typer.testing import CliRunner

from oiforge.cli import app
from oiforge.evaluate.multilabel import multilabel_metrics
from oiforge.train import load_trained

runner = CliRunner()
ENV = {"COLUMNS": "160", "TERM": "dumb"}


@pytest.fixture(scope="module")
def evaluated(multilabel_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("ml-eval") / "run"
    shutil.copytree(multilabel_run, run)
    result = runner.invoke(app, ["evaluate", str(run), "--workers", "0"], env=ENV)
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "mAP" in flat and "95% bootstrap CI" in flat and "verified labels only" in flat
    assert "{n}" not in flat
    return run


@pytest.fixture(scope="module")
def exported(evaluated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ml-export")
    result = runner.invoke(app, ["export", str(evaluated), "--out", str(out)], env=ENV)
    assert result.exit_code == 0, result.output
    return out


def test_metrics_are_the_open_images_ones(evaluated: Path, multilabel_dataset: Path) -> None:
    metrics = json.loads((evaluated / "metrics.json").read_text())
    assert metrics["task"] == "multilabel" and metrics["samples"] == 10
    names = ["Thing 0", "Thing 1", "Thing 2"]
    assert list(metrics["per_class"]) == names and list(metrics["thresholds"]) == names
    aps = [metrics["per_class"][n]["ap"] for n in names]
    assert metrics["map"] == pytest.approx(np.mean([a for a in aps if a is not None]))
    low, high = metrics["map_ci95"]
    assert 0 <= low <= metrics["map"] <= high <= 1
    assert metrics["unknown_labels"] > 0  # the planted unknowns were left out, not scored
    labels = json.loads((evaluated / "labels.json").read_text())
    assert labels["task"] == "multilabel"
    assert labels["thresholds"] == [metrics["thresholds"][n] for n in names]


def test_predictions_csv_has_a_probability_per_class(evaluated: Path) -> None:
    rows = list(csv.DictReader(io.StringIO((evaluated / "predictions.csv").read_text())))
    assert len(rows) == 10
    assert list(rows[0]) == ["key", "image_id", "Thing 0", "Thing 1", "Thing 2"]
    assert all(0 <= float(r[f"Thing {c}"]) <= 1 for r in rows for c in range(3))


def test_the_report_shows_map_and_the_thresholds(evaluated: Path) -> None:
    html = (evaluated / "report.html").read_text()
    assert "mAP" in html and "bootstrap interval" in html and "threshold" in html
    assert "Worst false positives" in html and "Photographer" in html  # attribution kept


def test_an_unverified_label_is_never_a_false_positive() -> None:
    """Photo 2's class 0 is unknown: however sure the model is, nothing changes."""
    targets = np.array([[1, 0], [0, 1], [-1, 1], [1, 0]])
    probs = np.array([[0.9, 0.2], [0.1, 0.8], [0.2, 0.7], [0.8, 0.3]])
    sure = probs.copy()
    sure[2, 0] = 0.99
    val = (probs, targets)
    before = multilabel_metrics(val, (probs, targets), ["a", "b"])
    after = multilabel_metrics(val, (sure, targets), ["a", "b"])
    for key in ("ap", "precision", "recall", "f1"):
        assert before["per_class"]["a"][key] == after["per_class"]["a"][key] == 1.0
    assert after["micro"] == before["micro"]


def test_a_run_and_a_dataset_of_different_tasks_are_refused(
    probe_run: Path, multilabel_run: Path, multilabel_dataset: Path, tiny_dataset: Path
) -> None:
    single = runner.invoke(
        app, ["evaluate", str(probe_run), "--dataset", str(multilabel_dataset)], env=ENV
    )
    assert single.exit_code == 2 and "singlelabel model" in single.output
    assert "multilabel dataset" in single.output and "Traceback" not in single.output
    multi = runner.invoke(
        app, ["evaluate", str(multilabel_run), "--dataset", str(tiny_dataset)], env=ENV
    )
    assert multi.exit_code == 2 and "multilabel model" in multi.output


def test_export_ends_in_a_sigmoid_and_keeps_the_thresholds(exported: Path, evaluated: Path) -> None:
    import onnxruntime as ort

    labels = json.loads((exported / "labels.json").read_text())
    assert labels["task"] == "multilabel" and len(labels["thresholds"]) == 3
    session = ort.InferenceSession(str(exported / "model.onnx"))
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = load_trained(evaluated).model(x).sigmoid().numpy()
    (got,) = session.run(None, {"input": x.numpy()})
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert "threshold" in (exported / "MODEL.md").read_text()


def _scene(path: Path, drawn: tuple[int, ...]) -> Path:
    draw_scene(drawn, random.Random(3), (64, 64)).save(path, "JPEG", quality=90)
    return path


def test_predict_returns_every_label_above_its_threshold(exported: Path, tmp_path: Path) -> None:
    image = _scene(tmp_path / "two.jpg", (0, 2))
    result = runner.invoke(app, ["predict", str(exported), str(image), "--json"], env=ENV)
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)
    cut = json.loads((exported / "labels.json").read_text())["thresholds"]
    scores = {s["index"]: s["probability"] for s in item["top_k"]}
    assert len(scores) == 3  # top-k: every class of a 3-class model
    above = [s["index"] for s in item["labels"]]
    assert above == sorted((i for i in scores if scores[i] >= cut[i]), key=lambda i: -scores[i])
    table = runner.invoke(app, ["predict", str(exported), str(image), "--csv"], env=ENV)
    assert table.exit_code == 0 and "above_threshold" in table.stdout.splitlines()[0]


@pytest.fixture(scope="module")
def service(exported: Path) -> Iterator[str]:
    from oiforge.serve.app import create_app
    from oiforge.serve.holder import ServeConfig

    with LiveServer(create_app(exported, ServeConfig(), api_key="")) as server:
        wait_ready(server.url)
        yield server.url


def test_the_service_answers_with_labels_and_thresholds(service: str, tmp_path: Path) -> None:
    model = httpx.get(f"{service}/v1/model").json()
    assert model["task"] == "multilabel"
    assert all(0 < c["threshold"] < 1 for c in model["classes"])
    image = _scene(tmp_path / "one.jpg", (1,)).read_bytes()
    resp = httpx.post(f"{service}/v1/predict", files=[("image", ("one.jpg", image))], timeout=30)
    assert resp.status_code == 200, resp.text
    (pred,) = resp.json()["predictions"]
    cut = {c["index"]: c["threshold"] for c in model["classes"]}
    assert all(s["probability"] >= cut[s["index"]] for s in pred["labels"])
    assert {s["index"] for s in pred["labels"]} == {
        s["index"] for s in pred["top_k"] if s["probability"] >= cut[s["index"]]
    }


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_shows_the_labels_above_their_thresholds(
    service: str, tmp_path: Path, chromium: Any, artifacts: Path
) -> None:
    image = _scene(tmp_path / "page.jpg", (0, 1))
    page = chromium.new_page(viewport={"width": 900, "height": 640})
    page.goto(service + "/")
    page.wait_for_function("document.getElementById('model').textContent.includes('multi-label')")
    page.set_input_files("#file", str(image))
    page.wait_for_selector("#labels .labels-head")
    head = page.locator("#labels .labels-head").inner_text()
    chips = page.locator("#labels .chip").all_inner_texts()
    assert ("thresholds" in head and chips) or ("No label" in head and not chips)
    assert len(page.locator("#bars .row").all()) == 3
    page.screenshot(path=str(artifacts / "serve-page-multilabel.png"), full_page=True)
