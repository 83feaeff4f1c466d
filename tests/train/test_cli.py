"""The `train`, `evaluate` and `estimate` commands through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oiforge.cli import app

runner = CliRunner()
ENV = {"COLUMNS": "120", "TERM": "dumb"}


def test_train_on_a_missing_dataset_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train", str(tmp_path / "nope"), "--out", str(tmp_path / "r")], env=ENV
    )
    assert result.exit_code == 2
    assert "not a directory" in result.output


def test_bad_option_values_exit_2(tiny_dataset: Path, tmp_path: Path) -> None:
    args = ["train", str(tiny_dataset), "--out", str(tmp_path / "r"), "--mode", "magic"]
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 2
    assert "mode" in result.output


@pytest.mark.slow
def test_train_then_evaluate(tiny_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", str(tiny_dataset), "--out", str(run), "--mode", "scratch", "--epochs", "2",
            "--image-size", "32", "--workers", "0"]  # fmt: skip
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    assert "best_val_acc" in result.output
    again = runner.invoke(app, args, env=ENV)
    assert again.exit_code == 2 and "--resume" in again.output
    result = runner.invoke(app, ["evaluate", str(run), "--workers", "0"], env=ENV)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "metrics.json").read_text())["split"] == "test"
    assert (run / "report.html").is_file()


@pytest.mark.slow
def test_estimate_prints_options_and_costs(tiny_dataset: Path) -> None:
    args = ["estimate", str(tiny_dataset), "--mode", "scratch", "--image-size", "32",
            "--batch-size", "4", "--steps", "1", "--epochs", "3"]  # fmt: skip
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    assert "this machine" in result.output and "g4dn.xlarge" in result.output


def test_budget_needs_a_price(tiny_dataset: Path, tmp_path: Path) -> None:
    args = ["train", str(tiny_dataset), "--out", str(tmp_path / "r"), "--budget-usd", "1"]
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 2
    assert "--usd-per-hour" in result.output


@pytest.mark.slow
def test_several_seeds_report_mean_and_std(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "seeds"
    args = ["train", str(tiny_dataset), "--out", str(out), "--mode", "scratch", "--epochs", "1",
            "--image-size", "32", "--workers", "0", "--seeds", "2"]  # fmt: skip
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "seeds.json").read_text())
    assert [r["seed"] for r in data["runs"]] == [0, 1]
    assert {"best_val_acc", "accuracy"} <= set(data["mean_std"])
    assert (out / "seed-1" / "report.html").is_file()
