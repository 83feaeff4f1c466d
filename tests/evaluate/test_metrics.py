"""Metric invariants (hypothesis) and hand-checked values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oiforge.evaluate import compute_metrics
from oiforge.evaluate.metrics import calibration, top_k_accuracy


@st.composite
def predictions(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    classes = draw(st.integers(2, 6))
    n = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * draw(st.floats(0.1, 5.0))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, classes, size=n)
    return probs, labels


@settings(max_examples=60, deadline=None)
@given(predictions())
def test_metric_invariants(data: tuple[np.ndarray, np.ndarray]) -> None:
    probs, labels = data
    names = [f"c{i}" for i in range(probs.shape[1])]
    m = compute_metrics(probs, labels, names, top_k=(1, 2, 5))
    confusion = np.array(m["confusion"])
    assert confusion.sum() == len(labels)
    assert m["accuracy"] == pytest.approx(np.trace(confusion) / len(labels))
    assert m["top_k"]["1"] == pytest.approx(m["accuracy"])
    assert m["top_k"]["1"] <= m["top_k"]["2"] <= 1.0
    assert m["weighted"]["recall"] == pytest.approx(m["accuracy"])
    assert [c["support"] for c in m["per_class"]] == confusion.sum(axis=1).tolist()
    assert 0.0 <= m["ece"] <= 1.0
    assert sum(b["count"] for b in m["calibration_bins"]) == len(labels)
    for c in m["per_class"]:
        assert 0.0 <= c["precision"] <= 1.0 and 0.0 <= c["recall"] <= 1.0


def test_perfect_and_hand_checked_values() -> None:
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    labels = np.array([0, 1, 1, 2])
    m = compute_metrics(probs, labels, ["a", "b", "c"], top_k=(1, 2))
    assert m["accuracy"] == 0.75
    assert m["top_k"]["2"] == 1.0
    b = m["per_class"][1]
    assert (b["precision"], b["recall"], b["support"]) == (1.0, 0.5, 2)
    a = m["per_class"][0]
    assert a["precision"] == 0.5 and a["recall"] == 1.0
    assert m["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    perfect = compute_metrics(np.eye(3), np.arange(3), ["a", "b", "c"])
    assert perfect["accuracy"] == 1.0 and perfect["macro"]["f1"] == 1.0


def test_calibration_of_a_confident_wrong_model() -> None:
    probs = np.array([[0.95, 0.05]] * 10)
    ece, bins = calibration(probs, np.ones(10, dtype=int))
    assert ece == pytest.approx(0.95)
    assert len(bins) == 1 and bins[0]["accuracy"] == 0.0


def test_empty_input_gives_nan_not_a_crash() -> None:
    assert np.isnan(top_k_accuracy(np.zeros((0, 3)), np.zeros(0, dtype=int), 1))
