"""The training configuration: one frozen object, written resolved as ``config.yaml``.

Why the defaults are what they are (docs/train.md says the same for users):

- ``mode="auto"``: nobody knows in advance whether a linear probe, an MLP head, partial or
  full fine-tuning suits a dataset; auto tries the cheap ones first and keeps the best.
- ``monitor="val_loss"``: the loss is a continuous, proper score; accuracy on a small
  validation split moves in steps of one image and picks lucky epochs.
- ``min_epochs=3``: an epoch before it is kept only as a fallback, so a lucky first epoch
  never ends a run (see ``loop.improved``).
- ``train_blocks=2``, ``views=3``: the last two blocks of a network carry most of what
  fine-tuning changes (the later the layer, the more task-specific); three augmented views
  make the cached activations cost three forward passes per image, once.
- ``task`` is the dataset's (never an option); ``loss="bce"``: a multi-label model learns one
  sigmoid per class by binary cross-entropy over the verified labels only (``asl``: the
  asymmetric loss); ``unknown_as_negative=False``: a label nobody checked is not a negative.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oiforge.contracts.dataset import Task
from oiforge.errors import InvalidInputError, MalformedFileError

if TYPE_CHECKING:
    from oiforge.train.dataset import DatasetIndex

Mode = Literal["auto", "probe", "partial", "finetune", "scratch"]
Augment = Literal["none", "light", "strong", "randaugment"]
Balance = Literal["none", "weights", "sampler"]
Schedule = Literal["cosine", "onecycle"]
Head = Literal["linear", "mlp"]
Monitor = Literal["val_acc", "val_loss"]
Loss = Literal["bce", "asl"]

DEFAULT_MODEL = "efficientnet_lite0"
#: Peak learning rates per mode (AdamW). probe: the MLP head's (a linear probe uses L-BFGS);
#: partial: blocks and head alike, 10x below finetune's head, because its head starts from the
#: fitted probe (LP-FT) and a large first step would undo it.
DEFAULT_LR = {"probe": 1e-3, "partial": 1e-4, "finetune": 1e-3, "scratch": 3e-3}
SCRATCH_MODEL = "oiforge_small_cnn"

#: Fields that do not change what training computes: they may differ on ``--resume``.
NON_TRAINING_FIELDS = frozenset(
    {"out", "dataset", "max_minutes", "budget_usd", "usd_per_hour", "workers", "device", "chosen"}
)
#: Fields auto fills in with its pick: a finished auto run's config.yaml carries them.
AUTO_FIELDS = frozenset({"chosen", "head", "train_blocks", "members", "trunk_blocks"})
#: ``chosen`` when auto's model is the average of several candidates (``members``).
ENSEMBLE = "ensemble"


class Member(BaseModel):
    """One model of auto's ensemble: the candidate it came from, its head, and whether it
    shares the frozen ImageNet trunk (probe, MLP, partial) or runs on the image itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    head: Head = "linear"
    shared: bool = True


class TrainConfig(BaseModel):
    """Everything a run needs; the CLI builds it, ``config.yaml`` stores it (resolved)."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    dataset: str
    out: str
    model: str = DEFAULT_MODEL
    pretrained: bool = True
    mode: Mode = "auto"
    num_classes: int = 0
    image_size: int = Field(224, ge=16, le=1024)
    crop_pct: float = Field(0.875, gt=0.1, le=1.0)
    epochs: int = Field(20, ge=1)
    head_epochs: int = Field(2, ge=0)
    batch_size: int = Field(32, ge=1)
    lr: float | None = Field(None, gt=0)  # None: per mode (DEFAULT_LR)
    backbone_lr_mult: float = Field(0.1, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    schedule: Schedule = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    augment: Augment = "light"
    balance: Balance = "none"
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    head: Head = "linear"
    train_blocks: int = Field(2, ge=1, le=64)  # partial: how many of the last blocks train
    views: int = Field(3, ge=1, le=32)  # partial: augmented views cached per training image
    drop_rate: float = Field(0.2, ge=0, lt=1)
    monitor: Monitor = "val_loss"
    patience: int = Field(5, ge=1)
    min_epochs: int = Field(3, ge=1)
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
    chosen: str = ""  # auto: the candidate whose weights are best.safetensors, or "ensemble"
    ensemble: bool = True  # auto: may average the finished candidates (see auto.py)
    members: tuple[Member, ...] = ()  # auto's ensemble: its models, in order
    trunk_blocks: int = Field(0, ge=0)  # auto's ensemble: blocks of the shared frozen trunk
    task: Task = "singlelabel"  # the dataset's (classes.json), filled in by training
    loss: Loss = "bce"  # multi-label: bce or asl (single-label: cross-entropy)
    unknown_as_negative: bool = False  # multi-label: unverified labels count as absent

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
    if old.mode == "auto":  # a finished auto run recorded its pick in these
        a = {k: v for k, v in a.items() if k not in AUTO_FIELDS}
    return [f"{k}: {a[k]!r} -> {b.get(k)!r}" for k in a if a[k] != b.get(k)]


def resolve_config(config: TrainConfig, index: DatasetIndex) -> TrainConfig:
    """Fill in what the dataset and the mode decide."""
    changes: dict[str, object] = {"num_classes": len(index.classes), "task": index.task}
    if not index.multilabel and config.loss != "bce":
        raise InvalidInputError(
            f"--loss {config.loss} is for multi-label datasets; {index.root} is single-label "
            "(it trains with cross-entropy)"
        )
    if config.lr is None and config.mode != "auto":  # auto: per candidate (auto.py)
        changes["lr"] = DEFAULT_LR[config.mode]
    if config.mode == "scratch":
        changes["pretrained"] = False
        if config.model == DEFAULT_MODEL:
            changes["model"] = SCRATCH_MODEL
    elif config.model == SCRATCH_MODEL:
        raise InvalidInputError(f"{SCRATCH_MODEL} has no pretrained weights: use --mode scratch")
    if config.mode == "auto" and config.max_minutes is None:
        from oiforge.train.auto import default_minutes

        changes["max_minutes"] = default_minutes()
    return config.replace(**changes)
