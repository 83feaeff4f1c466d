"""`oiforge` commands of the train stage: ``train``, ``evaluate``, ``estimate``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import TextColumn
from rich.table import Table

from oiforge.cli._common import console, err_console, progress_bar

if TYPE_CHECKING:
    from oiforge.progress import Event


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("train")(train_command)
    app.command("train-worker", hidden=True)(train_worker_command)
    app.command("evaluate")(evaluate_command)
    app.command("estimate")(estimate_command)


def train_command(
    dataset: Path = typer.Argument(
        ..., help="Dataset: {train,val,test}/<class>/*.jpg, *.tar shards or parquet/*.parquet."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="The run directory to write."),
    model: str = typer.Option("efficientnet_lite0", "--model", help="timm model name."),
    mode: str = typer.Option(
        "auto", "--mode", help="auto | probe | partial | finetune | scratch (docs/train.md)."
    ),
    pretrained: bool = typer.Option(True, "--pretrained/--no-pretrained", help="ImageNet weights."),
    epochs: int = typer.Option(20, "--epochs", help="Most epochs to train."),
    head_epochs: int = typer.Option(2, "--head-epochs", help="finetune: head-only epochs first."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Images per step."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate (default per mode)."),
    backbone_lr_mult: float = typer.Option(0.1, "--backbone-lr-mult", help="finetune: LR factor."),
    weight_decay: float = typer.Option(0.05, "--weight-decay", help="AdamW weight decay."),
    schedule: str = typer.Option("cosine", "--schedule", help="cosine | onecycle."),
    warmup_epochs: float = typer.Option(0.0, "--warmup-epochs", help="Linear warm-up epochs."),
    image_size: int = typer.Option(224, "--image-size", help="Input side in pixels."),
    augment: str = typer.Option("light", "--augment", help="none | light | strong | randaugment."),
    balance: str = typer.Option(
        "none", "--balance", help="none | weights | sampler (multi-label: positive weights)."
    ),
    label_smoothing: float = typer.Option(
        0.1, "--label-smoothing", help="0 turns it off (single-label only)."
    ),
    loss: str = typer.Option(
        "bce", "--loss", help="Multi-label: bce | asl (asymmetric); unknown labels masked."
    ),
    unknown_as_negative: bool = typer.Option(
        False, "--unknown-as-negative", help="Multi-label: labels nobody checked count as absent."
    ),
    head: str = typer.Option("linear", "--head", help="linear | mlp."),
    train_blocks: int = typer.Option(
        2, "--train-blocks", help="partial: how many of the last blocks train."
    ),
    views: int = typer.Option(3, "--views", help="partial: augmented views cached per image."),
    ensemble: bool = typer.Option(
        True, "--ensemble/--no-ensemble", help="auto: may average the finished candidates."
    ),
    monitor: str = typer.Option("val_loss", "--monitor", help="val_loss | val_acc."),
    patience: int = typer.Option(5, "--patience", help="Epochs without improvement to stop."),
    min_epochs: int = typer.Option(
        3, "--min-epochs", help="No early stop, and no best epoch, before this one."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (runs repeat exactly on CPU)."),
    seeds: int = typer.Option(1, "--seeds", help="Train N seeds; report mean ± std."),
    workers: int = typer.Option(2, "--workers", help="Decoding processes."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    max_minutes: float | None = typer.Option(
        None, "--max-minutes", help="Stop after N minutes (auto: its budget; 10 on CPU, 20 GPU)."
    ),
    budget_usd: float | None = typer.Option(None, "--budget-usd", help="Stop at this cost."),
    usd_per_hour: float | None = typer.Option(None, "--usd-per-hour", help="Price for budget."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    gpus: int = typer.Option(0, "--gpus", help="DDP: one process per GPU on this node (NCCL)."),
    procs: int = typer.Option(0, "--procs", help="DDP on CPU: N processes on this node (gloo)."),
    nodes: int = typer.Option(
        1, "--nodes", help="DDP: machines in the job (same command on each)."
    ),
    node_rank: int = typer.Option(0, "--node-rank", help="DDP: this machine's index, 0..nodes-1."),
    master_addr: str | None = typer.Option(None, "--master-addr", help="DDP: host of node 0."),
    master_port: int = typer.Option(29500, "--master-port", help="DDP: a free port on node 0."),
) -> None:
    """Train a classifier; writes config.yaml, labels.json, best.safetensors, metrics.csv.

    With --gpus N / --procs N (and --nodes) it starts N processes with torchrun (DDP);
    --batch-size is then per process.
    """
    from oiforge.errors import InvalidInputError
    from oiforge.train import build_config
    from oiforge.train.ddp import launch, plan_launch

    if budget_usd is not None and usd_per_hour is None:
        raise InvalidInputError("--budget-usd needs --usd-per-hour (see `oiforge estimate`)")
    plan = plan_launch(gpus, procs, nodes, node_rank, master_addr, master_port)
    options: dict[str, Any] = dict(locals())
    for key in ("seeds", "resume", "build_config", "InvalidInputError", "launch", "plan_launch"):
        options.pop(key)
    for key in ("plan", "gpus", "procs", "nodes", "node_rank", "master_addr", "master_port"):
        options.pop(key)
    options.update(dataset=str(dataset), out=str(out))
    config = build_config(**options)
    if plan is not None:
        if seeds > 1:
            raise InvalidInputError("--seeds with --gpus/--procs: train the seeds one by one")
        launch(config, plan, resume)
        _print_summary(config.out)
        return
    if seeds <= 1:
        _train_one(config, resume)
        return
    _train_seeds(config, seeds, resume)


def train_worker_command(
    config_file: Path = typer.Argument(..., help="The resolved config.yaml to train."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in its --out."),
) -> None:
    """Internal: one rank of `oiforge train --gpus/--procs`, started by torchrun."""
    from oiforge.train.config import read_config
    from oiforge.train.ddp import run_worker

    config = read_config(config_file)
    events = run_worker(config, resume)
    if os.environ.get("RANK", "0") == "0":
        _draw(events)
    else:
        for _ in events:
            pass


def _print_summary(out: str) -> None:
    path = Path(out) / "summary.json"
    if path.is_file():
        _summary_table(out, json.loads(path.read_text(encoding="utf-8")))


def _summary_table(out: str, summary: dict[str, Any]) -> None:
    table = Table(title=f"run {out}", show_header=False)
    for key, value in summary.items():
        if key not in ("candidates", "probe_cv"):
            table.add_row(key, str(value))
    console.print(table)
    if summary.get("candidates"):
        console.print(candidates_table(summary["candidates"]))


def candidates_table(rows: list[dict[str, Any]]) -> Table:
    """auto's candidates: what each scored on validation, how long it took, which won."""
    table = Table(title="auto: candidates (validation split)")
    multi = any("val_map" in row for row in rows)
    cols = ["candidate", *(["val mAP"] if multi else []), "val acc", "val loss", "seconds"]
    for col in (*cols, "status"):
        table.add_column(col, justify="right" if col.startswith(("val", "sec")) else "left")
    for row in rows:
        mark = " [green](chosen)[/]" if row.get("chosen") else ""
        scores = [_num(row.get(k)) for k in (["val_map"] if multi else []) + ["val_acc"]]
        table.add_row(
            f"{row['name']}{mark}", *scores, _num(row.get("val_loss")),
            _num(row.get("seconds"), 1), str(row.get("status", "")),
        )  # fmt: skip
    return table


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def _train_one(config: Any, resume: bool) -> dict[str, Any]:
    from oiforge.train import run_training

    summary = _draw(run_training(config, resume=resume))
    _summary_table(config.out, summary)
    return summary


def _train_seeds(config: Any, seeds: int, resume: bool) -> None:
    from oiforge.evaluate import run_evaluation
    from oiforge.train.rundir import summarize_seeds, write_seeds_summary

    results = []
    for offset in range(seeds):
        seed = config.seed + offset
        run = Path(config.out) / f"seed-{seed}"
        summary = _train_one(config.replace(seed=seed, out=str(run)), resume)
        summary.update(_draw(run_evaluation(run, workers=config.workers)))
        results.append(summary)
    stats = summarize_seeds(results)
    write_seeds_summary(Path(config.out), results, stats)
    table = Table(title=f"{seeds} seeds: mean ± std")
    table.add_column("metric")
    table.add_column("mean ± std", justify="right")
    for key, (mean, std) in stats.items():
        table.add_row(key, f"{mean:.4f} ± {std:.4f}")
    console.print(table)


def _draw(events: Iterable[Event]) -> dict[str, Any]:
    """Rich progress bars for a stream of events; returns the final summary."""
    from oiforge.progress import CandidateEnd, EpochEnd, Finished, Notice, PhaseStart, Step

    summary: dict[str, Any] = {}
    with progress_bar(TextColumn("{task.fields[stats]}")) as progress:
        task = None
        for event in events:
            if isinstance(event, PhaseStart):
                label = (
                    f"{event.phase} {event.epoch}/{event.epochs}" if event.epoch else event.phase
                )
                task = progress.add_task(label, total=event.total_steps, stats="")
            elif isinstance(event, Step) and task is not None:
                stats = (
                    "" if event.loss != event.loss else f"loss {event.loss:.3f} acc {event.acc:.3f}"
                )
                progress.update(task, completed=event.step, stats=stats)
            elif isinstance(event, EpochEnd) and task is not None:
                row = event.row
                mark = " [green]best[/]" if event.is_best else ""
                text = (
                    f"loss {row['train_loss']:.3f} val_loss {row['val_loss']:.3f} "
                    f"val_acc {row['val_acc']:.3f}{mark}"
                )
                progress.update(task, completed=progress.tasks[task].total, stats=text)
            elif isinstance(event, CandidateEnd):
                row = event.row
                first = f"val_mAP {_num(row['val_map'])} " if "val_map" in row else ""
                score = (
                    f"{first}val_acc {row['val_acc']:.3f} val_loss {row['val_loss']:.3f} "
                    f"({row['seconds']:.0f} s)"
                    if row.get("status") == "finished"
                    else row.get("status", "")
                )
                console.print(
                    f"[bold]candidate {event.number}/{event.total} {row['name']}[/]: {score}",
                    highlight=False,
                )
            elif isinstance(event, Notice):
                colour = "yellow" if event.level == "warning" else "cyan"
                err_console.print(f"[{colour}]{event.level}:[/] {event.text}", highlight=False)
            elif isinstance(event, Finished):
                summary = dict(event.summary)
    return summary


def evaluate_command(
    run: Path = typer.Argument(..., help="A run directory from `oiforge train`."),
    dataset: Path | None = typer.Option(None, "--dataset", help="Another dataset to test on."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per batch."),
    workers: int = typer.Option(2, "--workers", help="Decoding processes."),
    worst: int = typer.Option(12, "--worst", help="Mistakes shown in the report."),
    tta: str = typer.Option(
        "none", "--tta", help="Test-time augmentation: none | flip | multi-crop (10 views)."
    ),
    target_precision: float | None = typer.Option(
        None,
        "--target-precision",
        help="Multi-label: per-class thresholds reaching this val precision (default: best F1).",
    ),
) -> None:
    """Evaluate a run on the held-out test split: metrics.json, plots, report.html."""
    from oiforge.evaluate import run_evaluation, summary_meaning

    events = run_evaluation(
        run, dataset, batch_size=batch_size, workers=workers, worst=worst, tta=tta,
        target_precision=target_precision,
    )  # fmt: skip
    summary = _draw(events)
    table = Table(title=f"evaluation of {run} ({summary.get('split')} split)", show_header=False)
    for key, value in summary.items():
        table.add_row(key, _cell(value))
    console.print(table)
    console.print(summary_meaning(summary))
    console.print(f"report: {run / 'report.html'}")


def _cell(value: Any) -> str:
    """A summary value as text: numbers to 4 places (an interval's two ends too)."""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return " - ".join(f"{v:.4f}" for v in value)
    return str(value)


def estimate_command(
    dataset: Path = typer.Argument(..., help="The dataset to train on."),
    model: str = typer.Option("efficientnet_lite0", "--model", help="timm model name."),
    mode: str = typer.Option(
        "finetune", "--mode", help="auto | probe | partial | finetune | scratch."
    ),
    epochs: int = typer.Option(20, "--epochs", help="Epochs planned."),
    image_size: int = typer.Option(224, "--image-size", help="Input side in pixels."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Images per step."),
    steps: int = typer.Option(3, "--steps", help="Steps measured on this machine."),
    table_path: Path | None = typer.Option(None, "--instances", help="Your own instance table."),
) -> None:
    """Measure throughput here and estimate time and cost per GPU instance type."""
    from oiforge.train.estimate import estimate

    result = estimate(
        dataset, model=model, mode=mode, epochs=epochs, image_size=image_size,
        batch_size=batch_size, steps=steps, table_path=table_path,
    )  # fmt: skip
    console.print(
        f"{result.images} training images x {result.epochs_effective} passes; measured here: "
        f"{result.here_img_s:.1f} img/s ({result.here_what}), data pipeline "
        f"{result.decode_img_s_per_core:.0f} img/s per core"
    )
    table = Table(title=f"estimate: {model} {mode} {image_size}px")
    for col in ("option", "img/s", "time", "USD", "note"):
        table.add_column(col, justify="right" if col in ("img/s", "time", "USD") else "left")
    for row in result.rows:
        seconds = round(row.hours * 3600)
        duration = f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        table.add_row(row.name, f"{row.img_s:.0f}", duration, f"{row.usd:.3f}", row.note)
    console.print(table)
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
