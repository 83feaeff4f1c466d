"""The training configuration: one frozen object, written resolved as ``config.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oiforge.errors import InvalidInputError, MalformedFileError

Mode = Literal["probe", "finetune", "scratch"]
Augment = Literal["none", "light", "strong", "randaugment"]
Balance = Literal["none", "weights", "sampler"]
Schedule = Literal["cosine", "onecycle"]
Head = Literal["linear", "mlp"]
Monitor = Literal["val_acc", "val_loss"]

DEFAULT_MODEL = "efficientnet_lite0"
SCRATCH_MODEL = "oiforge_small_cnn"

#: Fields that do not change what training computes: they may differ on ``--resume``.
NON_TRAINING_FIELDS = frozenset(
    {"out", "dataset", "max_minutes", "budget_usd", "usd_per_hour", "workers", "device"}
)


class TrainConfig(BaseModel):
    """Everything a run needs; the CLI builds it, ``config.yaml`` stores it (resolved)."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    dataset: str
    out: str
    model: str = DEFAULT_MODEL
    pretrained: bool = True
    mode: Mode = "probe"
    num_classes: int = 0
    image_size: int = Field(224, ge=16, le=1024)
    crop_pct: float = Field(0.875, gt=0.1, le=1.0)
    epochs: int = Field(20, ge=1)
    head_epochs: int = Field(2, ge=0)
    batch_size: int = Field(32, ge=1)
    lr: float | None = Field(None, gt=0)  # None: per mode (trainer.DEFAULT_LR)
    backbone_lr_mult: float = Field(0.1, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    schedule: Schedule = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    augment: Augment = "light"
    balance: Balance = "none"
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    head: Head = "linear"
    drop_rate: float = Field(0.2, ge=0, lt=1)
    monitor: Monitor = "val_acc"
    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0)
    val_fraction: float = Field(0.1, gt=0, lt=0.9)
    seed: int = 0
    workers: int = Field(2, ge=0)
    device: str = "auto"
    amp: bool = True
    max_minutes: float | None = Field(None, gt=0)
    budget_usd: float | None = Field(None, gt=0)
    usd_per_hour: float | None = Field(None, ge=0)
    world_size: int = Field(1, ge=1)  # processes (DDP); --batch-size is per process

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated)."""
        return TrainConfig.model_validate({**self.model_dump(), **changes})

    def training_fields(self) -> dict[str, Any]:
        """The fields that decide the result; a resumed run must match them exactly."""
        return {k: v for k, v in self.model_dump().items() if k not in NON_TRAINING_FIELDS}


def build_config(**values: Any) -> TrainConfig:
    """Validate options into a config; a bad value becomes an ``InvalidInputError``."""
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInputError(f"bad training option {where}: {first['msg']}") from exc


def dump_config(config: TrainConfig) -> str:
    """The YAML text of ``config.yaml``."""
    return yaml.safe_dump(config.model_dump(), sort_keys=False)


def read_config(path: Path) -> TrainConfig:
    """Read a ``config.yaml`` written by :func:`dump_config`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return TrainConfig.model_validate(data)
    except (yaml.YAMLError, ValidationError, TypeError) as exc:
        raise MalformedFileError(str(path), str(exc).splitlines()[0]) from exc


def config_differences(old: TrainConfig, new: TrainConfig) -> list[str]:
    """Names of the result-deciding fields that differ, as ``name: old -> new``."""
    a, b = old.training_fields(), new.training_fields()
    return [f"{k}: {a[k]!r} -> {b.get(k)!r}" for k in a if a[k] != b.get(k)]
