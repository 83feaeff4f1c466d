"""Multi-process training (DDP under torchrun): starting the job, and rank-aware helpers.

``oiforge train --gpus N`` (or ``--procs N`` on CPU) writes the resolved config to a file and
runs ``python -m torch.distributed.run ... -m oiforge.cli train-worker CONFIG`` with the same
Python. One node: a c10d rendezvous on 127.0.0.1 with a free port. Several nodes: run the same
command on every node with its ``--node-rank`` and the same ``--master-addr/--master-port``.

One process per GPU (NCCL) or per CPU slot (gloo). Every rank runs the same
:func:`oiforge.train.run_training`; the helpers below are no-ops in a single process, so there
is one code path. Rank 0 alone writes the run directory; validation sums are all-reduced so
every rank takes the same early-stopping decision.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from oiforge.errors import InvalidInputError, StageError
from oiforge.progress import Event
from oiforge.train.config import TrainConfig, dump_config

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


def broadcast_module(d: Dist, module: nn.Module) -> None:
    """Rank 0's parameters and buffers in ``module`` on every rank."""
    if not d.active:
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def gather_rows(d: Dist, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every rank's rows of each tensor, concatenated on rank 0 (in rank order); the other
    ranks keep their own."""
    if not d.active:
        return tensors
    parts = gather_to_main(d, [t.cpu() for t in tensors])
    if not d.is_main:
        return tensors
    out = []
    for i, own in enumerate(tensors):
        rows = [part[i] for part in parts if len(part[i])]
        out.append(torch.cat(rows) if rows else own)
    return tuple(out)


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
    from oiforge.train.loop import run_training

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


# --- starting the job (torchrun) ---

DEFAULT_MASTER_PORT = 29500


@dataclass(frozen=True)
class LaunchPlan:
    """How many processes where; ``gpus`` says one process per GPU (NCCL) vs CPU (gloo)."""

    procs_per_node: int
    gpus: bool = False
    nodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int = DEFAULT_MASTER_PORT

    @property
    def world_size(self) -> int:
        return self.procs_per_node * self.nodes


def plan_launch(
    gpus: int, procs: int, nodes: int, node_rank: int, master_addr: str | None, master_port: int
) -> LaunchPlan | None:
    """Validate the CLI's scale-out options; ``None`` means a plain single-process run."""
    if gpus and procs:
        raise InvalidInputError("--gpus and --procs exclude each other (GPUs or CPU processes)")
    if min(gpus, procs, nodes - 1, node_rank) < 0 or not 0 < master_port < 65536:
        raise InvalidInputError(
            "--gpus, --procs, --nodes, --node-rank and --master-port: bad value"
        )
    if node_rank >= nodes:
        raise InvalidInputError(f"--node-rank {node_rank} must be below --nodes {nodes}")
    if nodes > 1 and not master_addr:
        raise InvalidInputError("--nodes > 1 needs --master-addr (the host of --node-rank 0)")
    if procs > (os.cpu_count() or 1):
        raise InvalidInputError(
            f"--procs {procs} is more than this machine's {os.cpu_count()} cores: each process "
            "needs at least one core"
        )
    if gpus and gpus > torch.cuda.device_count():
        raise InvalidInputError(
            f"--gpus {gpus} asked for, but {torch.cuda.device_count()} CUDA devices are visible"
        )
    per_node = gpus or procs or (1 if nodes > 1 else 0)
    if per_node == 0 or (per_node == 1 and nodes == 1):
        return None
    return LaunchPlan(per_node, bool(gpus), nodes, node_rank, master_addr, master_port)


def torchrun_argv(plan: LaunchPlan, config_path: Path, resume: bool) -> list[str]:
    """The torchrun command line (same Python, same environment)."""
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={plan.procs_per_node}",
    ]
    if plan.nodes == 1 and not plan.master_addr:
        argv += ["--nnodes=1", "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0"]
    else:
        argv += [
            f"--nnodes={plan.nodes}",
            f"--node-rank={plan.node_rank}",
            f"--master-addr={plan.master_addr}",
            f"--master-port={plan.master_port}",
        ]
    argv += ["-m", "oiforge.cli", "train-worker", str(config_path)]
    return argv + (["--resume"] if resume else [])


def worker_env(plan: LaunchPlan) -> dict[str, str]:
    """Split this machine's cores between the CPU processes (torchrun would say 1 each)."""
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:
        cores = os.cpu_count() or 1
        env["OMP_NUM_THREADS"] = str(max(1, cores // plan.procs_per_node))
    return env


def launch(config: TrainConfig, plan: LaunchPlan, resume: bool = False) -> None:
    """Run the job to the end; a failed rank becomes a ``StageError`` (torchrun stops the rest)."""
    from oiforge.train.loop import preflight

    config = config.replace(world_size=plan.world_size, device="cuda" if plan.gpus else "cpu")
    if plan.node_rank == 0:  # other nodes may start after rank 0 has written the run dir
        preflight(config, resume)
    with tempfile.TemporaryDirectory(prefix="oiforge-train-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(dump_config(config), encoding="utf-8")
        code = subprocess.call(torchrun_argv(plan, path, resume), env=worker_env(plan))
    if code != 0:
        raise StageError(
            f"distributed training failed (torchrun exit code {code}); the failing rank's "
            f"message is above; rerun with --resume to continue from the last epoch"
        )
