"""Dynamic batching returns each caller exactly its own rows."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tests.helpers.serve import PRE, photo

from oiforge.serve.images import preprocess_bytes
from oiforge.serve.metrics import Metrics
from oiforge.serve.predictor import Batcher, Predictor


def test_concurrent_callers_get_their_own_probabilities(exported: Path) -> None:
    predictor = Predictor(exported)
    inputs = [
        [preprocess_bytes(photo(40 + i, 30 + 2 * j), PRE)[0] for j in range(1 + i % 3)]
        for i in range(24)
    ]
    expected = [predictor.probabilities(arrays) for arrays in inputs]
    metrics = Metrics()
    batcher = Batcher(predictor, metrics, max_batch=8)
    try:
        with ThreadPoolExecutor(12) as pool:
            got = list(pool.map(batcher.probabilities, inputs))
    finally:
        batcher.close()
    for want, have in zip(expected, got, strict=True):
        assert have.shape == want.shape
        np.testing.assert_allclose(have, want, atol=1e-5)
    text = metrics.render().decode()
    assert "oiforge_inference_batch_images_count" in text
