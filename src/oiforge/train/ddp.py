"""Rank-aware helpers for multi-process training (DDP under torchrun).

One process per GPU (NCCL) or per CPU slot (gloo). Every rank runs the same
:func:`oiforge.train.run_training`; these helpers are no-ops in a single process, so there is
one code path. Rank 0 alone writes the run directory; validation sums are all-reduced so every
rank takes the same early-stopping decision.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from oiforge.errors import InvalidInputError
from oiforge.train.config import TrainConfig
from oiforge.train.events import Event

#: torchrun sets these in every worker process.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
GROUP_TIMEOUT = timedelta(minutes=30)  # feature extraction on rank 0's shard may be slow


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; ``Dist()`` is a plain single-process run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def current() -> Dist:
    """The running process group's view, or a single process when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return Dist()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return Dist(dist.get_rank(), dist.get_world_size(), local)


def barrier(d: Dist) -> None:
    if d.active:
        dist.barrier()


def all_reduce_sums(d: Dist, values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums over all ranks (float64, so counts stay exact)."""
    if not d.active:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return [float(v) for v in t.tolist()]


def any_rank(d: Dist, flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    if not d.active:
        return flag
    t = torch.tensor([int(flag)], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_lists(d: Dist, items: list[Any]) -> list[Any]:
    """Every rank's ``items`` concatenated (on every rank)."""
    if not d.active:
        return items
    parts: list[list[Any]] = [[] for _ in range(d.world)]
    dist.all_gather_object(parts, items)
    return [x for part in parts for x in part]


def gather_to_main(d: Dist, obj: Any) -> list[Any]:
    """Every rank's ``obj`` on rank 0 (in rank order); other ranks get ``[]``."""
    if not d.active:
        return [obj]
    out: list[Any] | None = [None] * d.world if d.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out or []


def broadcast_flag(d: Dist, flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank."""
    if not d.active:
        return flag
    t = torch.tensor([int(flag)], dtype=torch.int32, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def wrap(d: Dist, module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` inside DistributedDataParallel when there are several ranks."""
    if not d.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def is_torchrun_worker() -> bool:
    return all(name in os.environ for name in TORCHRUN_ENV)


def worker_device(config: TrainConfig) -> str:
    """The device of this rank: ``cuda:LOCAL_RANK`` when training on GPUs, else the CPU."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    wants_cuda = config.device.startswith("cuda") or (
        config.device == "auto" and torch.cuda.is_available()
    )
    if not wants_cuda:
        return "cpu"
    if local >= torch.cuda.device_count():
        raise InvalidInputError(
            f"rank with LOCAL_RANK {local} has no GPU: {torch.cuda.device_count()} visible"
        )
    return f"cuda:{local}"


def run_worker(config: TrainConfig, resume: bool = False) -> Iterator[Event]:
    """One rank of a torchrun job: join the process group, train, leave the group."""
    from oiforge.train.trainer import run_training

    if not is_torchrun_worker():
        raise InvalidInputError("train-worker runs under torchrun: use `oiforge train --procs N`")
    device = worker_device(config)
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend, timeout=GROUP_TIMEOUT)
    try:
        yield from run_training(config.replace(device=device), resume=resume)
    finally:
        dist.destroy_process_group()
