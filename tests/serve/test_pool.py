"""The inference pool returns each caller exactly its own rows, batched or not."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from tests.helpers.serve import PRE, photo

from oiforge.serve.images import ImageRejected, preprocess_bytes
from oiforge.serve.metrics import Metrics
from oiforge.serve.predictor import InferencePool, Predictor


def test_concurrent_callers_get_their_own_probabilities(exported: Path) -> None:
    predictor = Predictor(exported)
    inputs = [[photo(40 + i, 30 + 2 * j) for j in range(1 + i % 3)] for i in range(24)]
    expected = [
        predictor.probabilities([preprocess_bytes(data, PRE)[0] for data in images])
        for images in inputs
    ]
    metrics = Metrics()
    pool = InferencePool(predictor, metrics, workers=2, max_batch=8)
    try:
        with ThreadPoolExecutor(12) as threads:
            got = list(threads.map(pool.predict, inputs))
    finally:
        pool.close()
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        np.testing.assert_allclose(np.stack([p.probs for p in have]), want, atol=1e-5)
        assert [(p.width, p.height) for p in have] == [
            (40 + i, 30 + 2 * j) for j in range(len(have))
        ]
    text = metrics.render().decode()
    assert "oiforge_inference_batch_images_count" in text


def test_a_bad_image_fails_only_its_own_future(exported: Path) -> None:
    pool = InferencePool(Predictor(exported), Metrics(), workers=1, max_batch=4)
    try:
        futures = [pool.submit(photo()), pool.submit(b"not an image"), pool.submit(photo(90, 60))]
        with pytest.raises(ImageRejected):
            futures[1].result()
        assert (futures[2].result().width, futures[2].result().height) == (90, 60)
        assert futures[0].result().probs.shape == (3,)
    finally:
        pool.close()
