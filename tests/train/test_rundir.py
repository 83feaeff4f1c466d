"""The run-directory contract that export/serve rely on, and load_trained."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from oiforge.train import load_trained


@pytest.mark.slow
def test_run_dir_has_the_contract_files(probe_run: Path) -> None:
    config = yaml.safe_load((probe_run / "config.yaml").read_text())
    assert config["model"] == "efficientnet_lite0"
    assert config["num_classes"] == 3
    assert config["image_size"] == 64
    assert config["mode"] == "probe"
    labels = json.loads((probe_run / "labels.json").read_text())
    assert [c["index"] for c in labels["classes"]] == [0, 1, 2]
    assert labels["classes"][0] == {"index": 0, "name": "Class0", "mid": "/m/00x"}
    prep = labels["preprocessing"]
    assert prep["resize"] == "shorter-then-center-crop"
    assert prep["input_range"] == "0-1"
    assert prep["size"] == 64
    assert len(prep["mean"]) == len(prep["std"]) == 3
    rows = list(csv.DictReader((probe_run / "metrics.csv").read_text().splitlines()))
    assert rows and {"epoch", "train_loss", "val_loss", "val_acc"} <= set(rows[0])
    assert (probe_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_probe_saves_the_full_model(probe_run: Path) -> None:
    state = load_file(str(probe_run / "best.safetensors"))
    assert "conv_stem.weight" in state  # the backbone
    assert state["classifier.weight"].shape == (3, 1280)  # the trained head


@pytest.mark.slow
def test_load_trained_gives_an_eval_model(probe_run: Path) -> None:
    trained = load_trained(probe_run)
    assert not trained.model.training
    assert trained.classes == ["Class0", "Class1", "Class2"]
    assert trained.mids == ["/m/00x", "/m/01x", "/m/02x"]
    assert trained.preprocessing["size"] == 64
    assert trained.config["num_classes"] == 3
    with torch.no_grad():
        logits = trained.model(torch.zeros(2, 3, 64, 64))
    assert logits.shape == (2, 3)


def test_load_trained_refuses_a_non_run(tmp_path: Path) -> None:
    from oiforge.errors import StageError

    with pytest.raises(StageError, match="not a training run"):
        load_trained(tmp_path)
