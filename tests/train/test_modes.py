"""The modes of #24 through the public API and the CLI: the probe fitted to convergence,
partial fine-tuning on cached activations, auto's candidates, test-time augmentation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file
from typer.testing import CliRunner

import oiforge.train
from oiforge.cli import app
from oiforge.errors import InvalidInputError
from oiforge.progress import CandidateEnd, Notice
from oiforge.train import build_config, load_trained, run_training, train
from oiforge.train.auto import Costs, NothingFinishedError, Result, beats, pick
from oiforge.train.dataset import open_dataset
from oiforge.train.models import create_model
from oiforge.train.rundir import read_metrics

from .synthetic import make_dataset

runner = CliRunner()
ENV = {"COLUMNS": "120", "TERM": "dumb"}
SMALL = {"image_size": 32, "workers": 0, "batch_size": 16}


def _config(dataset: Path, out: Path, **kw: Any) -> Any:
    return build_config(dataset=str(dataset), out=str(out), **{**SMALL, **kw})


def test_the_public_api_is_exactly_this() -> None:
    assert sorted(oiforge.train.__all__) == [
        "TrainConfig", "TrainedModel", "build_config", "load_trained", "run_training", "train",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def lucky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One validation photo per class: any half-trained model can score 1.0 on it."""
    return make_dataset(
        tmp_path_factory.mktemp("lucky") / "ds", classes=2,
        per_class={"train": 12, "val": 1, "test": 4}, seed=7,
    )  # fmt: skip


@pytest.mark.slow
def test_the_probe_never_stops_on_a_lucky_first_epoch(lucky: Path, tmp_path: Path) -> None:
    summary = train(_config(lucky, tmp_path / "probe", mode="probe", image_size=64))
    rows = read_metrics(tmp_path / "probe")
    assert float(rows[0]["val_acc"]) == 1.0  # the lucky situation: perfect from the start
    assert summary["stopped"] == "converged" and summary["best_epoch"] == len(rows)
    assert float(rows[-1]["train_loss"]) < 0.35  # trained: far below log(2) = 0.69
    assert summary["probe_cv_folds"] >= 2 and summary["probe_C"] > 0


@pytest.mark.slow
def test_an_epoch_before_min_epochs_is_only_a_fallback(lucky: Path, tmp_path: Path) -> None:
    config = _config(
        lucky, tmp_path / "mlp", mode="probe", head="mlp", monitor="val_acc", epochs=8,
        patience=1, min_epochs=4,
    )  # fmt: skip
    summary = train(config)
    assert int(str(summary["best_epoch"])) >= 4  # the lucky epoch 1 did not stay the best
    assert int(str(summary["epochs_run"])) >= 4  # and did not stop the run


@pytest.fixture(scope="module")
def partial_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("partial") / "run"
    train(_config(tiny_dataset, out, mode="partial", train_blocks=2, views=2, epochs=2))
    return out


@pytest.mark.slow
def test_partial_saves_the_full_model_and_exports_with_torchs_answers(
    partial_run: Path, tmp_path: Path
) -> None:
    state = load_file(str(partial_run / "best.safetensors"))
    reference = create_model("efficientnet_lite0", 3).state_dict()
    assert state.keys() == reference.keys()
    pretrained = create_model("efficientnet_lite0", 3, pretrained=True).state_dict()
    assert torch.equal(state["conv_stem.weight"], pretrained["conv_stem.weight"])  # frozen
    assert not torch.equal(
        state["blocks.6.0.conv_pwl.weight"], pretrained["blocks.6.0.conv_pwl.weight"]
    )
    result = runner.invoke(app, ["export", str(partial_run), "--out", str(tmp_path / "x")], env=ENV)
    assert result.exit_code == 0, result.output
    from oiforge.serve.predictor import Predictor

    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = load_trained(partial_run).model(x).numpy()
    got = Predictor(tmp_path / "x").logits(x.numpy())
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_partial_on_a_network_without_blocks_is_a_clear_error(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    config = _config(tiny_dataset, tmp_path / "r", mode="partial", model="resnet18",
                     pretrained=False)  # fmt: skip
    with pytest.raises(InvalidInputError, match="blocks"):
        train(config)
    too_many = _config(tiny_dataset, tmp_path / "s", mode="partial", train_blocks=40)
    with pytest.raises(InvalidInputError, match=r"--train-blocks must be 1\.\.16"):
        train(too_many)


@pytest.mark.slow
def test_auto_writes_every_candidate_and_repeats_with_a_seed(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    kw = {"epochs": 2, "views": 2}
    first = train(_config(tiny_dataset, tmp_path / "a", **kw))
    second = train(_config(tiny_dataset, tmp_path / "b", **kw))
    names = [c["name"] for c in first["candidates"]]
    assert names == ["probe", "mlp", "partial-1", "partial-2", "finetune", "ensemble"]
    assert all(c["status"] == "finished" for c in first["candidates"])
    assert first["candidates"][-1]["members"] == names[:-1]
    assert all(isinstance(c["val_acc"], float) and c["seconds"] >= 0 for c in first["candidates"])
    keys = ("name", "val_acc", "val_loss", "epochs", "chosen")
    assert [{k: c[k] for k in keys} for c in first["candidates"]] == [
        {k: c[k] for k in keys} for c in second["candidates"]
    ]
    chosen = first["chosen"]
    config = (tmp_path / "a" / "config.yaml").read_text()
    assert f"chosen: {chosen}" in config and "mode: auto" in config
    trained = load_trained(tmp_path / "a")
    assert trained.classes == ["Class0", "Class1", "Class2"]
    if chosen == "ensemble":  # its members rebuilt from config.yaml, the trunk shared
        assert type(trained.model).__name__ == "Ensemble" and "trunk_blocks: 14" in config
        return
    best = load_file(str(tmp_path / "a" / "best.safetensors"))
    mine = load_file(str(tmp_path / "a" / "candidates" / chosen / "best.safetensors"))
    assert all(torch.equal(best[k], mine[k]) for k in best)


@pytest.mark.slow
def test_auto_on_two_photos_a_class_trains_the_probe_alone(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", classes=2, per_class={"train": 2, "val": 1})
    events = list(run_training(_config(ds, tmp_path / "r")))
    notices = " | ".join(e.text for e in events if isinstance(e, Notice))
    assert "training the linear probe alone" in notices and "2 training photo" in notices
    rows = [e.row for e in events if isinstance(e, CandidateEnd)]
    assert [r["name"] for r in rows] == ["probe"] and rows[0]["chosen"]
    assert (tmp_path / "r" / "best.safetensors").is_file()


def test_auto_with_no_time_for_any_candidate_is_a_named_error(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", classes=2, per_class={"train": 2, "val": 1})
    with pytest.raises(NothingFinishedError, match="no candidate finished"):
        train(_config(ds, tmp_path / "r", max_minutes=1e-9))
    args = ["train", str(ds), "--out", str(tmp_path / "c"), "--max-minutes", "1e-9"]
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 1 and "--max-minutes" in result.output


def test_auto_starts_no_candidate_that_cannot_finish_in_the_time_left(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine measured as slow (an hour an image; the probe's features come from the
    cache, so its run does not re-measure): the probe and the MLP head on its features run;
    partial and finetune, whose forward passes cannot stop midway, are skipped and say what
    they would need."""
    measured = Costs.measure(_config(tiny_dataset, tmp_path / "m"), open_dataset(tiny_dataset))
    assert measured.per_image_s > 0 and (measured.train, measured.val) == (48, 18)
    slow = Costs(per_image_s=3600.0, train=48, val=18)
    monkeypatch.setattr(Costs, "measure", staticmethod(lambda *_: slow))
    monkeypatch.setattr("oiforge.train.auto.probe_features_cached", lambda *_: True)
    summary = train(_config(tiny_dataset, tmp_path / "r", max_minutes=30, epochs=2))
    status = {c["name"]: c["status"] for c in summary["candidates"]}
    assert status["probe"] == status["mlp"] == "finished"
    assert status["partial-1"].startswith("skipped: no time left (needs ~")
    assert status["finetune"].startswith("skipped: no time left")
    assert summary["auto_seconds"] > 0 and summary["auto_overrun_seconds"] == 0.0


def test_auto_refuses_several_processes(tiny_dataset: Path, tmp_path: Path) -> None:
    args = ["train", str(tiny_dataset), "--out", str(tmp_path / "r"), "--procs", "2"]
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 2 and "one process" in result.output


def _result(name: str, right: list[bool], finished: bool = True) -> Result:
    labels = torch.zeros(len(right), dtype=torch.long)
    probs = torch.tensor([[0.9, 0.1] if r else [0.1, 0.9] for r in right])
    acc = sum(right) / len(right)
    row = {"name": name, "val_acc": acc, "status": "finished" if finished else "skipped"}
    return Result(row, probs if finished else None, labels if finished else None)


@given(st.lists(st.lists(st.booleans(), min_size=12, max_size=12), min_size=1, max_size=5))
def test_the_pick_is_finished_and_a_tie_keeps_the_simpler(outcomes: list[list[bool]]) -> None:
    results = [_result(f"c{i}", r) for i, r in enumerate(outcomes)]
    chosen = pick([_result("skipped", [True] * 12, finished=False), *results])
    assert chosen.finished
    assert not beats(results[0], results[0])  # equal: no win
    if all(r == outcomes[0] for r in outcomes):
        assert chosen is results[0]


def test_a_costlier_candidate_wins_only_by_more_than_noise() -> None:
    base = _result("probe", [True] * 10 + [False] * 10)
    one_more = _result("mlp", [True] * 11 + [False] * 9)
    swapped = _result("mlp", [False] * 2 + [True] * 10 + [False] * 8)  # 2 losses, 2 wins
    clearly = _result("partial", [True] * 18 + [False] * 2)
    assert pick([base, swapped]) is base
    assert pick([base, clearly]) is clearly
    assert beats(one_more, base)  # 1 win, 0 losses: more than one standard error
    with pytest.raises(NothingFinishedError):
        pick([_result("x", [True], finished=False)])


@pytest.mark.slow
@pytest.mark.parametrize("tta", ["flip", "multi-crop"])
def test_tta_in_onnx_equals_torch_and_is_recorded(
    probe_run: Path, tmp_path: Path, tta: str
) -> None:
    out = tmp_path / "x"
    result = runner.invoke(
        app, ["export", str(probe_run), "--out", str(out), "--tta", tta], env=ENV
    )
    assert result.exit_code == 0, result.output
    assert "max |diff|" in result.output and "ok" in result.output
    assert json.loads((out / "labels.json").read_text())["model"]["tta"] == tta
    from oiforge.serve.predictor import Predictor
    from oiforge.train.models import with_tta

    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = with_tta(load_trained(probe_run).model, tta, 64)(x).numpy()
    np.testing.assert_allclose(Predictor(out).logits(x.numpy()), expected, atol=1e-4)


@pytest.mark.slow
def test_evaluate_with_tta_says_what_the_accuracy_means(probe_run: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(probe_run), "--workers", "0", "--tta", "flip"],
                           env=ENV)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((probe_run / "metrics.json").read_text())["tta"] == "flip"
    assert "held-out test photos right; 95% CI" in result.output
    bad = runner.invoke(app, ["evaluate", str(probe_run), "--tta", "sideways"], env=ENV)
    assert bad.exit_code == 2 and "multi-crop" in bad.output
