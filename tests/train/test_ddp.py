"""Multi-process training: real torchrun, real gloo process groups on 127.0.0.1 (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file
from typer.testing import CliRunner

from oiforge.cli import app
from oiforge.contracts.run import read_labels
from oiforge.errors import InvalidInputError
from oiforge.train import build_config, train
from oiforge.train.cache import FeatureSet, merge_shards
from oiforge.train.ddp import LaunchPlan, plan_launch, torchrun_argv
from oiforge.train.rundir import read_metrics

from .synthetic import make_dataset

runner = CliRunner()
ENV = {"COLUMNS": "120", "TERM": "dumb"}
TINY = ["--image-size", "32", "--workers", "0", "--batch-size", "8"]


def _same_weights(a: Path, b: Path, name: str) -> bool:
    wa, wb = load_file(str(a / name)), load_file(str(b / name))
    return wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa)


ARGS = ["--mode", "finetune", "--epochs", "2", "--head-epochs", "1", "--procs", "2", *TINY]


@pytest.fixture(scope="module")
def stopped_ddp_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-process finetune run that a time limit (agreed by both ranks) stopped after its
    first epoch, gracefully."""
    run = tmp_path_factory.mktemp("ddp") / "run"
    args = ["train", str(tiny_dataset), "--out", str(run), *ARGS, "--max-minutes", "0.0001"]
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    return run


@pytest.mark.slow
def test_two_gloo_processes_write_a_normal_run_dir(stopped_ddp_run: Path, tmp_path: Path) -> None:
    run = stopped_ddp_run
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["world_size"] == 2 and config["mode"] == "finetune"
    assert [r["epoch"] for r in read_metrics(run)] == ["1"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_run"] == 1 and "time limit" in summary["stopped"]
    state = load_file(str(run / "best.safetensors"))
    assert "conv_stem.weight" in state and not any(k.startswith("module.") for k in state)
    result = runner.invoke(app, ["evaluate", str(run), "--workers", "0"], env=ENV)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "metrics.json").read_text())["split"] == "test"
    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "onnx")], env=ENV)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "onnx" / "model.onnx").is_file()


@pytest.mark.slow
def test_a_resumed_ddp_run_equals_an_uninterrupted_one(
    stopped_ddp_run: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    run, whole = stopped_ddp_run, tmp_path / "whole"
    resumed = runner.invoke(app, ["train", str(tiny_dataset), "--out", str(run), *ARGS,
                                  "--resume"], env=ENV)  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    result = runner.invoke(app, ["train", str(tiny_dataset), "--out", str(whole), *ARGS], env=ENV)
    assert result.exit_code == 0, result.output
    rows = [[{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(d)]
            for d in (run, whole)]  # fmt: skip
    assert rows[0] == rows[1] and len(rows[0]) == 2
    assert _same_weights(run, whole, "best.safetensors")
    assert _same_weights(run, whole, "checkpoint.safetensors")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_rank_whose_whole_batch_is_undecodable_does_not_hang_the_others(
    tmp_path: Path,
) -> None:
    """One decodable training image: one rank has a sample at some step, the other has none
    in any batch; it must still join every step's all-reduce."""
    data = make_dataset(tmp_path / "ds", per_class={"train": 8, "val": 3, "test": 3})
    photos = sorted((data / "train").rglob("*.jpg"))
    for photo in photos[1:]:
        photo.write_bytes(b"not a jpeg")
    run = tmp_path / "run"
    args = ["train", str(data), "--out", str(run), "--mode", "scratch", "--epochs", "1",
            "--procs", "2", "--image-size", "64", "--workers", "0",
            "--batch-size", "4"]  # fmt: skip
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_run"] == 1
    assert summary["undecodable_train_images"] == len(photos) - 1


@pytest.mark.slow
def test_probe_shards_features_and_matches_one_process(tiny_dataset: Path, tmp_path: Path) -> None:
    args = ["train", str(tiny_dataset), "--out", str(tmp_path / "ddp"), "--epochs", "2",
            "--mode", "probe", "--procs", "2", *TINY]  # fmt: skip
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    one = build_config(dataset=str(tiny_dataset), out=str(tmp_path / "one"), epochs=2, mode="probe",
                       image_size=32, workers=0, batch_size=8)  # fmt: skip
    train(one)
    ddp, single = read_metrics(tmp_path / "ddp"), read_metrics(tmp_path / "one")
    for a, b in zip(ddp, single, strict=True):
        for key in ("train_loss", "val_loss", "val_acc"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-3)


def test_resuming_with_another_process_count_is_refused(probe_run: Path) -> None:
    from oiforge.train.config import read_config

    config = read_config(probe_run / "config.yaml").replace(world_size=2)
    with pytest.raises(InvalidInputError, match="world_size"):
        train(config, resume=True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--gpus", "1", "--procs", "2"], "exclude each other"),
        (["--gpus", "64"], "CUDA devices"),
        (["--procs", "2", "--nodes", "2"], "--master-addr"),
        (["--procs", "2", "--nodes", "2", "--node-rank", "2", "--master-addr", "h"], "below"),
        (["--procs", "-1"], "bad value"),
        (["--procs", "100000"], "cores"),
        (["--procs", "2", "--seeds", "2"], "--seeds"),
        (["--procs", "2", "--resume", "--mode", "probe"], "nothing to resume"),
    ],
)
def test_bad_scale_out_options_exit_2(
    tiny_dataset: Path, tmp_path: Path, options: list[str], message: str
) -> None:
    args = ["train", str(tiny_dataset), "--out", str(tmp_path / "r"), *options]
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "r").exists()


def test_a_finished_run_is_checked_before_any_process_starts(probe_run: Path) -> None:
    from oiforge.train.config import read_config

    config = read_config(probe_run / "config.yaml")
    args = ["train", config.dataset, "--out", str(probe_run), "--procs", "2", "--resume",
            "--mode", "probe", "--image-size", "64", "--epochs", "6", "--workers", "0"]  # fmt: skip
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 2
    assert "world_size: 1 -> 2" in result.output


def test_the_worker_refuses_to_run_outside_torchrun(probe_run: Path) -> None:
    result = runner.invoke(app, ["train-worker", str(probe_run / "config.yaml")], env=ENV)
    assert result.exit_code == 2
    assert "torchrun" in result.output


def test_torchrun_command_lines() -> None:
    assert plan_launch(0, 0, 1, 0, None, 29500) is None
    assert plan_launch(0, 1, 1, 0, None, 29500) is None
    one = torchrun_argv(LaunchPlan(2), Path("c.yaml"), resume=True)
    assert one[1:4] == ["-m", "torch.distributed.run", "--nproc-per-node=2"]
    assert "--rdzv-endpoint=127.0.0.1:0" in one
    assert one[-4:] == ["oiforge.cli", "train-worker", "c.yaml", "--resume"]
    plan = plan_launch(0, 2, 3, 1, "head", 1234)
    assert plan is not None and plan.world_size == 6
    many = torchrun_argv(plan, Path("c.yaml"), resume=False)
    assert {"--nnodes=3", "--node-rank=1", "--master-addr=head", "--master-port=1234"} <= set(many)


@given(st.integers(1, 5), st.integers(0, 40), st.data())
def test_merged_feature_shards_are_the_one_process_features(
    world: int, n: int, data: st.DataObject
) -> None:
    bad = set(data.draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=n)) if n else set())
    feats = torch.arange(n, dtype=torch.float32).unsqueeze(1).repeat(1, 3)
    shards = []
    for rank in range(world):
        mine = list(range(n))[rank::world]
        good = [i for i, g in enumerate(mine) if g not in bad]
        shards.append(
            FeatureSet(
                feats[[mine[i] for i in good]].reshape(len(good), 3),
                torch.tensor([mine[i] % 7 for i in good], dtype=torch.long),
                torch.tensor(good, dtype=torch.long),
                [i for i, g in enumerate(mine) if g in bad],
            )
        )
    merged = merge_shards(shards)
    keep = [i for i in range(n) if i not in bad]
    assert merged.index.tolist() == keep
    assert merged.y.tolist() == [i % 7 for i in keep]
    if keep:
        assert merged.x[:, 0].tolist() == [float(i) for i in keep]
    assert merged.bad == sorted(bad)


@pytest.mark.slow
def test_a_multilabel_probe_on_two_processes_matches_one(
    multilabel_dataset: Path, tmp_path: Path
) -> None:
    """Verified negatives and unknowns survive the feature shards and the all-reduce: the
    same per-epoch losses, mAP and thresholds as one process."""
    args = ["train", str(multilabel_dataset), "--out", str(tmp_path / "ddp"), "--epochs", "3",
            "--mode", "probe", "--procs", "2", "--image-size", "64", "--workers", "0",
            "--batch-size", "16"]  # fmt: skip
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    one = build_config(dataset=str(multilabel_dataset), out=str(tmp_path / "one"), epochs=3,
                       mode="probe", image_size=64, workers=0, batch_size=16)  # fmt: skip
    train(one)
    ddp, single = read_metrics(tmp_path / "ddp"), read_metrics(tmp_path / "one")
    assert len(ddp) == len(single) >= 1
    for a, b in zip(ddp, single, strict=True):
        for key in ("train_loss", "val_loss", "val_acc"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-3)
    both = [read_labels(d / "labels.json") for d in (tmp_path / "ddp", tmp_path / "one")]
    assert both[0].task == both[1].task == "multilabel"
    assert both[0].thresholds == pytest.approx(both[1].thresholds, abs=1e-3)
    summary = [
        json.loads((d / "summary.json").read_text()) for d in (tmp_path / "ddp", tmp_path / "one")
    ]
    assert summary[0]["best_val_map"] == pytest.approx(summary[1]["best_val_map"], abs=1e-3)


@pytest.mark.slow
def test_a_multilabel_finetune_on_two_processes_writes_a_normal_run(
    multilabel_dataset: Path, tmp_path: Path
) -> None:
    run = tmp_path / "ft"
    args = ["train", str(multilabel_dataset), "--out", str(run), "--mode", "finetune",
            "--epochs", "2", "--head-epochs", "1", "--procs", "2", "--loss", "asl",
            "--image-size", "32", "--workers", "0", "--batch-size", "8"]  # fmt: skip
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_run"] == 2 and summary["best_val_map"] is not None
    assert read_labels(run / "labels.json").thresholds is not None
    result = runner.invoke(app, ["evaluate", str(run), "--workers", "0"], env=ENV)
    assert result.exit_code == 0, result.output
