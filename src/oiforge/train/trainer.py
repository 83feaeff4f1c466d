"""``run_training``: dataset -> run directory, yielding progress events.

Probe: features once (cached), a head trained on them. Finetune: the head first with the
backbone frozen, then everything with a lower backbone learning rate. Scratch: a small CNN.
Every epoch: validate, early-stopping bookkeeping, ``best.safetensors`` when improved, a
checkpoint, ``metrics.csv``. A resumed run reproduces an uninterrupted one (same seed, CPU).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from pathlib import Path

import torch
from torch import nn

from oiforge.errors import InvalidInputError
from oiforge.train import ddp
from oiforge.train.checkpoint import LoopState, load_checkpoint
from oiforge.train.config import (
    DEFAULT_MODEL,
    SCRATCH_MODEL,
    TrainConfig,
    config_differences,
    read_config,
)
from oiforge.train.dataset import DatasetIndex, open_dataset
from oiforge.train.events import Event, Finished, Notice
from oiforge.train.features import compute_features_sharded
from oiforge.train.feeders import (
    Feeder,
    create_loss,
    create_optimizer,
    feature_feeder,
    image_feeder,
)
from oiforge.train.fit import fit
from oiforge.train.models import preprocessing_for
from oiforge.train.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    build_model,
    write_config,
    write_labels,
)

log = logging.getLogger(__name__)

DEFAULT_LR = {"probe": 5e-3, "finetune": 1e-3, "scratch": 3e-3}


def resolve_config(config: TrainConfig, index: DatasetIndex) -> TrainConfig:
    """Fill in what the dataset and the mode decide."""
    changes: dict[str, object] = {"num_classes": len(index.classes)}
    if config.mode == "scratch":
        changes["pretrained"] = False
        if config.model == DEFAULT_MODEL:
            changes["model"] = SCRATCH_MODEL
    elif config.model == SCRATCH_MODEL:
        raise InvalidInputError(f"{SCRATCH_MODEL} has no pretrained weights: use --mode scratch")
    return config.replace(**changes)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InvalidInputError(f"unknown device {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("--device cuda asked for, but no CUDA device is available")
    return device


def prepare_run_dir(config: TrainConfig, resume: bool) -> bool:
    """Create the run dir; on resume check the config matches. True if a checkpoint exists."""
    run = Path(config.out)
    has_run = (run / CONFIG_FILE).is_file()
    if resume:
        if not has_run:
            raise InvalidInputError(f"nothing to resume in {run}: no {CONFIG_FILE}")
        diffs = config_differences(read_config(run / CONFIG_FILE), config)
        if diffs:
            raise InvalidInputError(
                "--resume with a different config: " + "; ".join(diffs) + " (use a new --out)"
            )
        return (run / CHECKPOINT_FILE).is_file()
    if has_run:
        raise InvalidInputError(f"{run} already holds a run: pass --resume or choose another --out")
    run.mkdir(parents=True, exist_ok=True)
    return False


def resolve_run(config: TrainConfig) -> tuple[TrainConfig, DatasetIndex]:
    """The dataset's index and the config with everything it decides filled in."""
    if config.lr is None:
        config = config.replace(lr=DEFAULT_LR[config.mode])
    index = open_dataset(config.dataset, config.val_fraction, config.seed)
    return resolve_config(config, index), index


def preflight(config: TrainConfig, resume: bool) -> None:
    """The checks every rank would make, made once before starting processes (clear errors,
    exit 2, instead of N ranks failing alike)."""
    resolved, _ = resolve_run(config)
    prepare_run_dir(resolved, resume)


def run_training(config: TrainConfig, resume: bool = False) -> Iterator[Event]:
    """Train as ``config`` says; yields progress; writes the run directory.

    Under torchrun (see :mod:`oiforge.train.ddp`) every rank calls this with the same config;
    rank 0 writes the run directory, the others only compute.
    """
    d = _check_world(config)
    config, index = resolve_run(config)
    has_checkpoint = prepare_run_dir(config, resume)
    ddp.barrier(d)  # every rank has checked the run dir before rank 0 writes into it
    for note in index.notes:
        yield Notice("warning", note)
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    preprocessing = preprocessing_for(config.model, config.image_size, config.crop_pct)
    run = Path(config.out)
    if d.is_main:
        write_config(run, config)
        write_labels(run, index.classes, preprocessing)
    model = _create_model(config, device)
    if config.mode == "probe":
        feeder = yield from _probe_feeder(config, index, model, preprocessing, device)
        if feeder is None:  # not rank 0: its share of the features is done
            yield Finished(str(run), {"rank": d.rank, "role": "feature shard"})
            return
        d = ddp.Dist()  # the head trains on rank 0 alone (seconds; DDP would only add traffic)
    else:
        train, val = index.splits["train"], index.splits["val"]
        feeder = image_feeder(config, train, val, preprocessing, device.type == "cuda", d)
    optimizer = create_optimizer(model, config)
    state = (
        load_checkpoint(run / CHECKPOINT_FILE, model, optimizer) if has_checkpoint else LoopState()
    )
    labels = [s.label for s in index.splits["train"]]
    yield from fit(config, model, feeder, optimizer, state, device, create_loss(config, labels), d)


def _check_world(config: TrainConfig) -> ddp.Dist:
    d = ddp.current()
    if config.world_size != d.world:
        raise InvalidInputError(
            f"the config says world_size {config.world_size}, but {d.world} process(es) run: "
            "start several with `oiforge train --procs N` or `--gpus N`"
        )
    return d


def _create_model(config: TrainConfig, device: torch.device) -> nn.Module:
    model = build_model(config, pretrained=config.pretrained).to(device)
    if device.type == "cuda" and config.amp and config.mode != "probe":
        model = model.to(memory_format=torch.channels_last)
    return model


def _probe_feeder(
    config: TrainConfig,
    index: DatasetIndex,
    model: nn.Module,
    preprocessing: dict[str, object],
    device: torch.device,
) -> Generator[Event, None, Feeder | None]:
    """Cached features of train and val (sharded over the ranks); None on ranks other than 0."""
    model_id = f"{config.model}|pretrained={config.pretrained}|head-input"
    d = ddp.current()
    sets = {}
    for split in ("train", "val"):
        fs = yield from compute_features_sharded(
            d,
            model,
            index.splits[split],
            dict(preprocessing),
            model_id=model_id,
            batch_size=max(config.batch_size, 64),
            workers=config.workers,
            device=device,
            phase=f"features {split}",
        )
        if fs is None:
            continue
        sets[split] = fs
        if fs.bad:
            yield Notice("warning", f"{len(fs.bad)} {split} images could not be decoded: skipped")
    if not d.is_main:
        return None
    if config.augment != "none":
        log.info(
            "probe mode trains on cached features: augmentation %r not applied", config.augment
        )
    if len(sets["train"].y) == 0:
        raise InvalidInputError(f"no decodable training images in {index.root}")
    return feature_feeder(config, sets["train"], sets["val"])


def train(config: TrainConfig, resume: bool = False) -> dict[str, object]:
    """Run training to the end without progress reporting; returns the summary."""
    summary: dict[str, object] = {}
    for event in run_training(config, resume=resume):
        if isinstance(event, Finished):
            summary = event.summary
    return summary
