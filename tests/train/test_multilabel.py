"""Multi-label training (#20) through the public API: the dataset's task read from
classes.json, unknown labels masked out of the loss, the probe and fine-tuning, thresholds
chosen on validation, and the clear errors (a task change on --resume, --loss on a
single-label dataset)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from oiforge.contracts.run import read_labels
from oiforge.errors import InvalidInputError
from oiforge.train import build_config, train
from oiforge.train.auto import beats_map
from oiforge.train.dataset import NEGATIVE, POSITIVE, UNKNOWN, open_dataset
from oiforge.train.heads import MultiLabelLoss, choose_thresholds, per_class_ap
from oiforge.train.rundir import read_metrics

SMALL = {"image_size": 32, "workers": 0, "batch_size": 16}


def _config(dataset: Path, out: Path, **kw: Any) -> Any:
    return build_config(dataset=str(dataset), out=str(out), **{**SMALL, **kw})


def test_the_dataset_says_multilabel_and_unknowns_stay_unknown(multilabel_dataset: Path) -> None:
    index = open_dataset(multilabel_dataset)
    assert index.task == "multilabel" and len(index.classes) == 3
    assert index.details == {"expand_up": False}
    truth = {p["image_id"]: p for p in json.loads((multilabel_dataset / "photos.json").read_text())}
    targets = [s.target for s in index.splits["test"]]
    assert len(targets) == 10 and all(len(t) == 3 for t in targets)
    kinds = {v for t in targets for v in t}
    assert kinds == {POSITIVE, NEGATIVE, UNKNOWN}  # every kind of label is there
    for s in index.splits["test"]:
        drawn = truth[Path(s.key).name]["drawn"]
        assert set(s.positives) <= set(drawn)  # a verified positive is in the picture
        assert not set(s.negatives) & set(drawn)  # a verified negative is not


def test_label_lists_by_mid_read_the_same(multilabel_dataset: Path, tmp_path: Path) -> None:
    from tests.helpers.multilabel import make_multilabel_dataset

    by_mid = make_multilabel_dataset(tmp_path / "mid", hidden_rate=0.15, by_mid=True)
    for split in ("train", "val", "test"):
        a = [s.target for s in open_dataset(multilabel_dataset).splits[split]]
        b = [s.target for s in open_dataset(by_mid).splits[split]]
        assert a == b


def test_unknown_as_negative_fills_in_every_unverified_label(multilabel_dataset: Path) -> None:
    index = open_dataset(multilabel_dataset, unknown_as_negative=True)
    assert all(UNKNOWN not in s.target for ss in index.splits.values() for s in ss)
    with pytest.raises(InvalidInputError, match="multi-label"):
        from .synthetic import make_dataset

        open_dataset(make_dataset(multilabel_dataset.parent / "single"), unknown_as_negative=True)


@settings(max_examples=60, deadline=None)
@given(
    logits=arrays(np.float32, (4, 3), elements=st.floats(-8, 8, width=32)),
    targets=arrays(np.int8, (4, 3), elements=st.sampled_from([-1, 0, 1])),
    noise=arrays(np.float32, (4, 3), elements=st.floats(-8, 8, width=32)),
    kind=st.sampled_from(["bce", "asl"]),
)
def test_the_loss_never_sees_an_unknown_label(
    logits: np.ndarray, targets: np.ndarray, noise: np.ndarray, kind: str
) -> None:
    """Whatever the model says on an unknown label, and whatever the label 'really' is, the
    loss and its gradient on the verified labels are the same; the unknown gets no gradient."""
    y = torch.tensor(targets, dtype=torch.float32)
    unknown = y < 0
    loss_fn = MultiLabelLoss(kind)
    x1 = torch.tensor(logits, requires_grad=True)
    moved = torch.where(unknown, torch.tensor(noise), torch.tensor(logits))
    x2 = moved.clone().requires_grad_(True)
    l1, l2 = loss_fn(x1, y), loss_fn(x2, y)
    l1.backward()
    l2.backward()
    assert x1.grad is not None and x2.grad is not None
    torch.testing.assert_close(l1, l2)
    assert torch.all(x1.grad[unknown] == 0)
    torch.testing.assert_close(x1.grad[~unknown], x2.grad[~unknown])
    if not (~unknown).any():
        assert float(l1.detach()) == 0.0


def test_average_precision_by_hand_and_unknowns_ignored() -> None:
    """Class 0: verified photos ranked 0.9 (yes), 0.8 (no), 0.7 (yes), 0.1 (no): AP =
    (1/1 + 2/3) / 2; the unknown photo at 0.95 changes nothing. Class 1 has no verified
    positive: no AP."""
    probs = np.array([[0.9, 0.2], [0.8, 0.3], [0.7, 0.9], [0.95, 0.1], [0.1, 0.5]])
    targets = np.array([[1, 0], [0, -1], [1, 0], [-1, 0], [0, -1]])
    ap = per_class_ap(probs, targets)
    assert ap[0] == pytest.approx((1 + 2 / 3) / 2) and np.isnan(ap[1])
    thresholds, rules = choose_thresholds(probs, targets)
    # best F1 (0.8) takes 0.9 and 0.7: the threshold sits halfway to the next score, 0.1
    assert thresholds[0] == pytest.approx(0.4) and rules[0] == "best F1"
    assert thresholds[1] == 0.5 and "no verified positive" in rules[1]


def test_auto_prefers_a_costlier_model_only_by_more_than_noise() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, (60, 3))
    good = np.where(targets == 1, 0.9, 0.1) + rng.normal(0, 0.05, targets.shape)
    noisy = rng.random(targets.shape)
    assert beats_map(good, noisy, targets)
    assert not beats_map(noisy, good, targets)
    assert not beats_map(good, good, targets)


def test_the_probe_learns_the_labels_and_records_thresholds(multilabel_run: Path) -> None:
    labels = read_labels(multilabel_run / "labels.json")
    assert labels.task == "multilabel" and labels.thresholds is not None
    assert len(labels.thresholds) == 3 and all(0 < t < 1 for t in labels.thresholds)
    summary = json.loads((multilabel_run / "summary.json").read_text())
    assert summary["best_val_map"] > 0.6  # coloured squares: chance is ~0.4
    rows = read_metrics(multilabel_run)
    assert rows and float(rows[-1]["train_loss"]) < 0.69  # below log 2: it learnt


@pytest.mark.slow
def test_finetune_with_the_asymmetric_loss_and_positive_weights(
    multilabel_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ft"
    config = _config(
        multilabel_dataset, out, mode="finetune", epochs=2, head_epochs=1, loss="asl",
        balance="weights", pretrained=False,
    )  # fmt: skip
    summary = train(config)
    assert summary["epochs_run"] == 2 and summary["best_val_map"] is not None
    assert read_labels(out / "labels.json").thresholds is not None
    rows = read_metrics(out)
    assert all(0 <= float(r["val_acc"]) <= 1 for r in rows)  # verified labels right at 0.5


@pytest.mark.slow
def test_partial_trains_a_multilabel_tail(multilabel_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "partial"
    config = _config(
        multilabel_dataset, out, mode="partial", epochs=1, train_blocks=1, views=1,
        balance="sampler",
    )  # fmt: skip
    summary = train(config)
    assert read_labels(out / "labels.json").task == "multilabel"
    assert summary["best_val_map"] is not None


def test_resume_refuses_a_dataset_of_the_other_task(
    multilabel_run: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(multilabel_run, run)
    with pytest.raises(InvalidInputError, match=r"multilabel model.*singlelabel dataset"):
        train(_config(tiny_dataset, run, mode="probe", epochs=6, image_size=32), resume=True)


def test_the_asymmetric_loss_needs_a_multilabel_dataset(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="--loss asl is for multi-label"):
        train(_config(tiny_dataset, tmp_path / "x", mode="probe", loss="asl"))
