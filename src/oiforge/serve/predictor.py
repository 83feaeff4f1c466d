"""The ONNX Runtime predictor: ``model.onnx`` + ``labels.json`` → top-k per image, and the
inference pool that turns a service's uploads into predictions.

This module and everything it imports stay free of torch, so ``oiforge predict`` and
``oiforge serve`` start fast and run in a small image.

The pool (:class:`InferencePool`): one worker thread per core, each running the whole path of
an image (decode, preprocess, model call) with one ONNX Runtime thread per call. A free worker
takes its share of what is queued at that moment (the queue over the workers, at most
``max_batch`` images) and runs it as one batch; it never waits for more work, so a lone
request pays no extra latency, and a burst is spread over the workers (taking the whole queue
let one worker run a burst as one long batch while another idled). Replaced a decode pool
feeding one model thread (bench/RESULTS.md, "serve"): an image crossed three threads, and
the model thread was the queue's bottleneck while the decoders idled. With one ORT thread a
batch beyond 4-8 images gains nothing per image while every request of a batch waits for the
whole batch: hence 8.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from oiforge.contracts.run import LABELS_FILE, Labels, read_labels
from oiforge.errors import InvalidInputError, StageError
from oiforge.errtext import exception_text
from oiforge.serve.images import DEFAULT_MAX_PIXELS, preprocess_bytes
from oiforge.serve.metrics import Metrics

MODEL_FILE: Final = "model.onnx"


@dataclass(frozen=True)
class Score:
    index: int
    name: str
    mid: str
    probability: float


def resolve_model_paths(model: Path) -> tuple[Path, Path]:
    """``MODEL`` may be an export dir or its ``model.onnx``: return (onnx, labels.json)."""
    onnx_path = model / MODEL_FILE if model.is_dir() else model
    if not onnx_path.is_file():
        raise InvalidInputError(f"no model at {onnx_path} (run `oiforge export RUN_DIR` first)")
    labels_path = onnx_path.with_name(LABELS_FILE)
    if not labels_path.is_file():
        raise InvalidInputError(f"no {LABELS_FILE} beside {onnx_path}")
    return onnx_path, labels_path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    out: npt.NDArray[np.float32] = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def session_options(threads: int, spin: bool) -> Any:
    """ONNX Runtime options: ``threads`` intra-op threads (0: ORT's choice), one inter-op.

    ``spin=False`` stops idle pool threads from busy-waiting for the next op: spinning buys
    a little latency on a dedicated machine but burns the cores that a server needs for HTTP
    and JPEG decoding (measured in bench/RESULTS.md, "serve").
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spinning = "1" if spin else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    return opts


class Predictor:
    """A loaded ONNX model. ``run`` is thread-safe (ONNX Runtime sessions are)."""

    def __init__(self, model: Path, threads: int = 0, spin: bool = True) -> None:
        import onnxruntime as ort

        onnx_path, labels_path = resolve_model_paths(model)
        self.labels: Labels = read_labels(labels_path)
        self.onnx_path = onnx_path
        self.sha256 = file_sha256(onnx_path)
        opts = session_options(threads, spin)
        try:
            self._session = ort.InferenceSession(
                str(onnx_path), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            why = exception_text(exc)
            raise StageError(f"ONNX Runtime cannot load {onnx_path}: {why}") from exc
        self._input = self._session.get_inputs()[0].name
        self._check_outputs()

    def _check_outputs(self) -> None:
        shape = self._session.get_outputs()[0].shape
        width = shape[-1] if shape else None
        if isinstance(width, int) and width != len(self.labels.classes):
            raise StageError(
                f"{self.onnx_path} outputs {width} classes but labels.json lists "
                f"{len(self.labels.classes)}"
            )

    @property
    def version(self) -> str:
        return self.sha256[:12]

    def logits(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Raw model outputs for an (N, 3, H, W) batch."""
        out: Any = self._session.run(None, {self._input: batch})[0]
        return np.asarray(out, dtype=np.float32)

    def probabilities(self, inputs: Sequence[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
        """Softmax probabilities for a list of (3, H, W) inputs, one model call (multi-label:
        the graph's own per-class probabilities)."""
        out = self.logits(np.stack(list(inputs)))
        return out if self.labels.multilabel else softmax(out)

    def top_k(self, probs: npt.NDArray[np.float32], k: int) -> list[list[Score]]:
        """The ``k`` best classes per row, best first (k is capped at the class count)."""
        k = max(1, min(k, probs.shape[1]))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        classes = self.labels.classes
        return [
            [Score(int(i), classes[i].name, classes[i].mid, float(row[i])) for i in idx]
            for row, idx in zip(probs, order, strict=True)
        ]

    def above_thresholds(self, probs: npt.NDArray[np.float32]) -> list[list[Score]] | None:
        """Multi-label: per row, every class whose probability reaches its threshold, most
        probable first; None for a single-label model."""
        if not self.labels.multilabel:
            return None
        cut = np.asarray(self.labels.cutoffs, dtype=np.float32)
        classes = self.labels.classes
        out = []
        for row in probs:
            hits = np.flatnonzero(row >= cut)
            hits = hits[np.argsort(-row[hits], kind="stable")]
            out.append(
                [Score(int(i), classes[i].name, classes[i].mid, float(row[i])) for i in hits]
            )
        return out


DEFAULT_MAX_BATCH: Final = 8
Probs = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Prediction:
    """One image's softmax row and its decoded (upright) size."""

    probs: Probs
    width: int
    height: int


@dataclass
class _Item:
    data: bytes
    future: Future[Prediction] = field(default_factory=Future)


@dataclass(frozen=True)
class _Ready:
    item: _Item
    array: npt.NDArray[np.float32]
    width: int
    height: int


class InferencePool:
    """Worker threads that turn queued image bytes into predictions, each on its own.

    A worker takes its share of what is queued when it is free (up to ``max_batch``), decodes
    and preprocesses those images and runs them through the model as one call, on the same
    thread: the image never changes threads between its bytes and its probabilities, and a
    request costs one hand-off to a worker and one back. Several workers run model calls
    side by side (ONNX Runtime sessions are thread-safe), so no thread waits for another's
    decode. A lone image pays no batching delay.
    """

    def __init__(
        self,
        predictor: Predictor,
        metrics: Metrics,
        workers: int = 1,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.predictor = predictor
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_pixels = max_pixels
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"oiforge-worker-{i}", daemon=True)
            for i in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, data: bytes) -> Future[Prediction]:
        """Queue one image's bytes; the future gets its prediction or ``ImageRejected``."""
        item = _Item(data)
        self._queue.put(item)
        return item.future

    def predict(self, images: Sequence[bytes]) -> list[Prediction]:
        """Predictions for ``images``, computed in shared batches (blocks until done)."""
        return [future.result() for future in [self.submit(data) for data in images]]

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=30)

    def _take(self, first: _Item) -> tuple[list[_Item], bool]:
        # a fair share of what is queued, not all of it: a burst is spread over the workers
        # instead of one worker running it as one long batch while the others idle
        share = 1 + self._queue.qsize() // len(self._threads)
        items = [first]
        while len(items) < min(share, self.max_batch):
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return items, True
            items.append(item)
        return items, False

    def _prepare(self, item: _Item) -> _Ready | None:
        if not item.future.set_running_or_notify_cancel():
            return None
        try:
            arr, decoded = preprocess_bytes(
                item.data, self.predictor.labels.preprocessing, self.max_pixels
            )
        except Exception as exc:  # ImageRejected, or a bug: that request fails, not the worker
            item.future.set_exception(exc)
            return None
        return _Ready(item, arr, decoded.width, decoded.height)

    def _run(self, items: list[_Item]) -> None:
        ready = [r for r in map(self._prepare, items) if r is not None]
        if not ready:
            return
        start = time.perf_counter()
        try:
            probs = self.predictor.probabilities([r.array for r in ready])
        except Exception as exc:  # handed to every waiting request, never kills the worker
            for r in ready:
                r.item.future.set_exception(exc)
            return
        self.metrics.inference.observe(time.perf_counter() - start)
        self.metrics.batch_size.observe(len(ready))
        for r, row in zip(ready, probs, strict=True):
            r.item.future.set_result(Prediction(row, r.width, r.height))

    def _loop(self) -> None:
        while (first := self._queue.get()) is not None:
            items, stop = self._take(first)
            self._run(items)
            if stop:
                return
