"""The ONNX Runtime predictor: ``model.onnx`` + ``labels.json`` → top-k per image, and the
dynamic batcher that lets concurrent requests share its calls.

This module and everything it imports stay free of torch, so ``oiforge predict`` and
``oiforge serve`` start fast and run in a small image.

Dynamic batching: one worker thread owns the model. Each request submits its images and
waits; the worker takes everything queued at that moment (up to ``max_batch`` images) and runs
it as one batch. It never waits for more work, so a lone request pays no extra latency, and
under load the per-call overhead is shared (FACTS.md: 124 img/s at batch 1, 198 img/s at batch
32, with 2 threads). With one inference thread (the default on 2 cores) batches beyond 4-8
images gain nothing per image, while every request of a batch waits for the whole batch:
hence 8.
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


@dataclass
class _Job:
    arrays: list[npt.NDArray[np.float32]]
    future: Future[Probs] = field(default_factory=Future)


class Batcher:
    def __init__(
        self, predictor: Predictor, metrics: Metrics, max_batch: int = DEFAULT_MAX_BATCH
    ) -> None:
        self.predictor = predictor
        self.metrics = metrics
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="oiforge-batcher", daemon=True)
        self._thread.start()

    def submit(self, arrays: list[npt.NDArray[np.float32]]) -> Future[Probs]:
        """Queue ``arrays``; the future gets their softmax rows (await it, no thread blocked)."""
        job = _Job(arrays)
        self._queue.put(job)
        return job.future

    def probabilities(self, arrays: list[npt.NDArray[np.float32]]) -> Probs:
        """Softmax rows for ``arrays``, computed in a shared batch (blocks until done)."""
        return self.submit(arrays).result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _take(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs, size = [first], len(first.arrays)
        while size < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            size += len(job.arrays)
        return jobs, False

    def _run(self, jobs: list[_Job]) -> None:
        arrays = [a for job in jobs for a in job.arrays]
        start = time.perf_counter()
        try:
            probs = self.predictor.probabilities(arrays)
        except Exception as exc:  # handed to every waiting request, never kills the worker
            for job in jobs:
                job.future.set_exception(exc)
            return
        self.metrics.inference.observe(time.perf_counter() - start)
        self.metrics.batch_size.observe(len(arrays))
        offset = 0
        for job in jobs:
            job.future.set_result(probs[offset : offset + len(job.arrays)])
            offset += len(job.arrays)

    def _loop(self) -> None:
        while (first := self._queue.get()) is not None:
            jobs, stop = self._take(first)
            self._run(jobs)
            if stop:
                return
