"""The ONNX Runtime predictor: ``model.onnx`` + ``labels.json`` → top-k per image.

This module and everything it imports stay free of torch, so ``oiforge predict`` and
``oiforge serve`` start fast and run in a small image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from oiforge.errors import InvalidInputError, StageError
from oiforge.errtext import exception_text
from oiforge.serve.labels import Labels, read_labels

MODEL_FILE: Final = "model.onnx"
LABELS_FILE: Final = "labels.json"


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
        """Softmax probabilities for a list of (3, H, W) inputs, one model call."""
        return softmax(self.logits(np.stack(list(inputs))))

    def top_k(self, probs: npt.NDArray[np.float32], k: int) -> list[list[Score]]:
        """The ``k`` best classes per row, best first (k is capped at the class count)."""
        k = max(1, min(k, probs.shape[1]))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        classes = self.labels.classes
        return [
            [Score(int(i), classes[i].name, classes[i].mid, float(row[i])) for i in idx]
            for row, idx in zip(probs, order, strict=True)
        ]
