"""Per-epoch checkpoints for ``--resume``: one safetensors file, no pickle.

Tensors: the model (``model/<name>``), the optimizer state (``opt/<param>/<name>``) and torch's
CPU RNG state. Everything else (epoch, optimizer hyper-parameters, early-stopping state, the
metrics history, Python/NumPy RNG states) is JSON in the file's metadata.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save
from torch import nn

from oiforge.atomic import write_bytes_atomic
from oiforge.errors import MalformedFileError


@dataclass
class LoopState:
    """What the loop carries from epoch to epoch."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best_metric: float | None = None
    best_epoch: int = 0
    stale_epochs: int = 0
    elapsed_s: float = 0.0
    bad_samples: list[int] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: LoopState
) -> None:
    """Write the resumable state atomically."""
    tensors: dict[str, torch.Tensor] = {
        f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()
    }
    opt = optimizer.state_dict()
    for pid, values in opt["state"].items():
        for name, value in values.items():
            tensors[f"opt/{pid}/{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng/torch"] = torch.get_rng_state()
    groups = [dict(g) for g in opt["param_groups"]]
    meta = {
        "loop": json.dumps(asdict(state)),
        "param_groups": json.dumps(groups),
        "py_rng": json.dumps(_py_rng_state()),
        "np_rng": json.dumps(_np_rng_state()),
    }
    write_bytes_atomic(path, save(tensors, metadata=meta))


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> LoopState:
    """Restore model, optimizer and RNG states; return the loop state."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata()
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (not a dict)
    except (OSError, ValueError, RuntimeError) as exc:
        raise MalformedFileError(str(path), f"unreadable checkpoint: {exc}") from exc
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt/"):
            _, pid, name = key.split("/", 2)
            opt_state.setdefault(int(pid), {})[name] = value
    groups = json.loads(meta["param_groups"])
    optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    torch.set_rng_state(tensors["rng/torch"])
    _set_py_rng_state(json.loads(meta["py_rng"]))
    _set_np_rng_state(json.loads(meta["np_rng"]))
    return LoopState(**json.loads(meta["loop"]))


def _py_rng_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _set_py_rng_state(state: list[Any]) -> None:
    random.setstate((state[0], tuple(state[1]), state[2]))


def _np_rng_state() -> list[Any]:
    state: Any = np.random.get_state(legacy=True)
    name, keys, pos, has_gauss, cached = state
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _set_np_rng_state(state: list[Any]) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
