"""Start a multi-process training job with torchrun (``torch.distributed.run``).

``oiforge train --gpus N`` (or ``--procs N`` on CPU) writes the resolved config to a file and
runs ``python -m torch.distributed.run ... -m oiforge.cli train-worker CONFIG`` with the same
Python. One node: a c10d rendezvous on 127.0.0.1 with a free port. Several nodes: run the same
command on every node with its ``--node-rank`` and the same ``--master-addr/--master-port``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from oiforge.errors import InvalidInputError, StageError
from oiforge.train.config import TrainConfig, dump_config

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
    from oiforge.train.trainer import preflight

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
