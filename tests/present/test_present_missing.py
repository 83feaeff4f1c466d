"""Runs with something missing or malformed: a deck that says what and how, or a named error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from present_helpers import cli, invoke, parse_deck

pytestmark = pytest.mark.slow

FAST = ("--no-learning-curve", "--no-estimate")


def _deck(run: Path, out: Path, *extra: object) -> str:
    cli("present", run, "--out", out, *FAST, *extra)
    return (out / "index.html").read_text(encoding="utf-8")


def test_a_run_without_evaluation_says_how_to_evaluate(run_copy: Path, tmp_path: Path) -> None:
    (run_copy / "metrics.json").unlink()
    html = _deck(run_copy, tmp_path / "deck")
    assert 'data-missing="metrics.json"' in html
    assert f"oiforge evaluate {run_copy}" in html
    facts, _ = parse_deck(html)
    assert not any(f.name.startswith("metrics.") for f in facts)
    assert any(f.name == "manifest.count" for f in facts)  # the data slides still count


def test_a_run_without_its_dataset_says_how_to_point_at_it(run_copy: Path, tmp_path: Path) -> None:
    config = run_copy / "config.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("dataset: ", f"dataset: {tmp_path}/gone-", 1), encoding="utf-8")
    html = _deck(run_copy, tmp_path / "deck")
    assert 'data-missing="dataset folder"' in html
    assert f"oiforge present {run_copy} --dataset DATASET_DIR" in html
    facts, _ = parse_deck(html)
    assert any(f.name == "metrics.accuracy" for f in facts)  # the results are still shown


def test_a_multilabel_run_shows_map(run_copy: Path, tmp_path: Path) -> None:
    labels = json.loads((run_copy / "labels.json").read_text())
    names = [c["name"] for c in labels["classes"]]
    (run_copy / "labels.json").write_text(json.dumps({**labels, "task": "multilabel"}))
    per_class = {n: {"ap": 0.5 + i / 20, "support": 3} for i, n in enumerate(names)}
    metrics = {"task": "multilabel", "samples": 11, "map": 0.625, "per_class": per_class}
    (run_copy / "metrics.json").write_text(json.dumps(metrics))
    html = _deck(run_copy, tmp_path / "deck")
    facts, _ = parse_deck(html)
    assert next(f.value for f in facts if f.name == "metrics.map") == "0.625"
    assert {f.key for f in facts if f.name == "metrics.per_class.ap"} == set(names)
    assert "multi-label" in html


@pytest.mark.parametrize(
    ("file", "content", "words"),
    [
        ("labels.json", "{not json", "malformed file"),
        ("metrics.json", '{"samples": 3}', "neither `accuracy` nor `map`"),
        ("config.yaml", "- a list\n", "expected a mapping"),
        ("metrics.csv", "epoch,val_acc\n1,high\n", "not a number"),
    ],
)
def test_malformed_artefacts_are_named_errors(
    run_copy: Path, tmp_path: Path, file: str, content: str, words: str
) -> None:
    (run_copy / file).write_text(content, encoding="utf-8")
    result = invoke("present", run_copy, "--out", tmp_path / "deck", *FAST)
    assert result.exit_code == 1, result.output
    assert words in result.output and str(run_copy / file) in result.output
    assert "Traceback" not in result.output


def test_not_a_run_and_a_broken_markdown_are_named_errors(tmp_path: Path) -> None:
    result = invoke("present", tmp_path, "--out", tmp_path / "deck")
    assert result.exit_code == 1 and "is not a training run: no config.yaml" in result.output
    bad = tmp_path / "slides.md"
    bad.write_text('---\ntitle: x\n---\n\n<!-- slide id="a" -->\nno title line\n')
    result = invoke("present", bad)
    assert result.exit_code == 1 and f"{bad}:6" in result.output and "## Title" in result.output
