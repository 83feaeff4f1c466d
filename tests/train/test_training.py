"""Training behaviour through the public API: learning, determinism, resume, stopping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from oiforge.progress import EpochEnd, Notice
from oiforge.train import build_config, run_training, train
from oiforge.train.rundir import read_metrics

SMALL = {"image_size": 32, "workers": 0, "batch_size": 16}


def _config(dataset: Path, out: Path, **kw: Any) -> Any:
    return build_config(dataset=str(dataset), out=str(out), **{**SMALL, **kw})


def _rows(run: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(run)]


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a / "best.safetensors")), load_file(str(b / "best.safetensors"))
    return wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


def _interrupt_after(config: Any, epochs_done: int) -> None:
    for event in run_training(config):
        if isinstance(event, EpochEnd) and event.row["epoch"] == epochs_done:
            break  # like a kill right after the epoch's checkpoint


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "augment"), [("probe", "none"), ("scratch", "strong")])
def test_resume_equals_an_uninterrupted_run(
    tiny_dataset: Path, tmp_path: Path, mode: str, augment: str
) -> None:
    kw = {"mode": mode, "epochs": 3, "augment": augment, "patience": 10, "balance": "sampler"}
    train(_config(tiny_dataset, tmp_path / "whole", **kw))
    _interrupt_after(_config(tiny_dataset, tmp_path / "parts", **kw), epochs_done=1)
    assert len(_rows(tmp_path / "parts")) == 1
    train(_config(tiny_dataset, tmp_path / "parts", **kw), resume=True)
    assert _rows(tmp_path / "parts") == _rows(tmp_path / "whole")
    assert _same_weights(tmp_path / "parts", tmp_path / "whole")


@pytest.mark.slow
def test_scratch_loss_decreases(tiny_dataset: Path, tmp_path: Path) -> None:
    kw = {"mode": "scratch", "epochs": 3, "augment": "light", "balance": "weights"}
    train(_config(tiny_dataset, tmp_path / "a", **kw))
    rows = _rows(tmp_path / "a")
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])


@pytest.mark.slow
def test_probe_learns_the_classes(probe_run: Path) -> None:
    rows = read_metrics(probe_run)  # one row per round of L-BFGS, fitted to convergence
    assert float(rows[-1]["train_loss"]) <= float(rows[0]["train_loss"])
    assert float(rows[-1]["train_loss"]) < 0.5  # far below log(3): trained, not stopped early
    # 6 validation drawings a class: well above chance (1/3); C is chosen by cross-validation
    # on the 48 training drawings, not on these
    assert max(float(r["val_acc"]) for r in rows) >= 0.5


def test_resume_with_a_different_config_is_refused(probe_run: Path, tiny_dataset: Path) -> None:
    from oiforge.errors import InvalidInputError
    from oiforge.train.config import read_config

    old = read_config(probe_run / "config.yaml")
    changed = old.replace(lr=0.5)
    with pytest.raises(InvalidInputError, match="different config: lr"):
        train(changed, resume=True)


def test_an_existing_run_is_not_overwritten(probe_run: Path) -> None:
    from oiforge.errors import InvalidInputError
    from oiforge.train.config import read_config

    with pytest.raises(InvalidInputError, match="already holds a run"):
        train(read_config(probe_run / "config.yaml"))


@pytest.mark.slow
def test_time_limit_stops_gracefully_and_keeps_a_model(tiny_dataset: Path, tmp_path: Path) -> None:
    config = _config(tiny_dataset, tmp_path / "r", mode="scratch", epochs=50, max_minutes=0.0001)
    events = list(run_training(config))
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert any("time limit" in n for n in notices)
    assert len(read_metrics(tmp_path / "r")) == 1
    assert (tmp_path / "r" / "best.safetensors").is_file()


@pytest.mark.slow
def test_early_stopping(tiny_dataset: Path, tmp_path: Path) -> None:
    config = _config(
        tiny_dataset, tmp_path / "r", mode="scratch", monitor="val_acc", epochs=40, patience=1,
        lr=1e-6,
    )  # fmt: skip
    summary = train(config)
    assert str(summary["stopped"]).startswith("early stopping")
    assert int(str(summary["epochs_run"])) < 40
