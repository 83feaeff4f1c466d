"""A training run folder's files that other stages read: ``labels.json`` and ``config.yaml``.

    run/labels.json   the classes and the preprocessing the model expects (:class:`Labels`);
                      written by training, rewritten by ``oiforge export`` with a ``model``
                      block (name, version, architecture); read by export, serve and predict.
                      A multi-label model's also says ``"task": "multilabel"`` and the
                      per-class ``thresholds`` from which a label is reported (chosen on the
                      validation split by training, again by ``oiforge evaluate``); a
                      single-label model's has neither key
    run/config.yaml   the resolved training config; owned and written by training
                      (``oiforge.train.config``), read elsewhere only through
                      :func:`read_run_config`

Reading ``labels.json`` validates every field, so a hand-edited or truncated file fails with
a named error (:class:`~oiforge.errors.MalformedFileError`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from oiforge.atomic import write_text_atomic
from oiforge.contracts.dataset import TASKS, ClassInfo, Task
from oiforge.errors import MalformedFileError

LABELS_FILE: Final = "labels.json"
CONFIG_FILE: Final = "config.yaml"

RESIZE_MODES: Final = ("shorter-then-center-crop",)
#: A multi-label class's threshold when none was chosen.
DEFAULT_THRESHOLD: Final = 0.5
INPUT_RANGES: Final = ("0-1",)


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input tensor (identical in training and serving)."""

    size: int = 224
    resize: str = "shorter-then-center-crop"
    crop_pct: float = 0.875
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    input_range: str = "0-1"

    @property
    def scale_size(self) -> int:
        """The shorter side after resizing, before the centre crop (timm's rule)."""
        return int(self.size / self.crop_pct)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data


@dataclass(frozen=True)
class ModelInfo:
    """Who the model is: shown by ``GET /v1/model`` and in the model card."""

    name: str = "model"
    version: str = "unversioned"
    architecture: str = "unknown"
    #: test-time augmentation inside the ONNX graph (``none``, ``flip``, ``multi-crop``)
    tta: str = "none"


@dataclass(frozen=True)
class Labels:
    """``labels.json``: classes in index order, preprocessing, and (after export) the model."""

    classes: tuple[ClassInfo, ...]
    preprocessing: Preprocessing
    model: ModelInfo | None = None  # None until ``oiforge export`` names the model
    task: Task = "singlelabel"
    #: multi-label: per class, the probability from which it is reported (None: not chosen)
    thresholds: tuple[float, ...] | None = None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"

    @property
    def cutoffs(self) -> tuple[float, ...]:
        """The thresholds, or 0.5 for every class where none were chosen."""
        return self.thresholds or (DEFAULT_THRESHOLD,) * len(self.classes)

    @property
    def model_info(self) -> ModelInfo:
        """The model block, or the defaults for a run not exported yet."""
        return self.model or ModelInfo()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "classes": [{"index": c.index, "name": c.name, "mid": c.mid} for c in self.classes],
            "preprocessing": self.preprocessing.to_json(),
        }
        if self.model is not None:
            data["model"] = asdict(self.model)
        if self.multilabel:
            data["task"] = self.task
            data["thresholds"] = list(self.cutoffs)
        return data


def _triple(path: str, key: str, value: object) -> tuple[float, float, float]:
    if not isinstance(value, list) or len(value) != 3:
        raise MalformedFileError(path, f"preprocessing.{key} must be a list of 3 numbers")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise MalformedFileError(path, f"preprocessing.{key} must be a list of 3 numbers")
    return (float(value[0]), float(value[1]), float(value[2]))


def parse_preprocessing(path: str, raw: object) -> Preprocessing:
    """Validate a ``preprocessing`` block; ``path`` names the file in errors."""
    if not isinstance(raw, dict):
        raise MalformedFileError(path, "'preprocessing' must be an object")
    size, crop = raw.get("size"), raw.get("crop_pct", 1.0)
    if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= 4096:
        raise MalformedFileError(path, f"preprocessing.size must be an integer 8..4096: {size!r}")
    if not isinstance(crop, int | float) or not 0.05 <= float(crop) <= 1.0:
        raise MalformedFileError(path, f"preprocessing.crop_pct must be in (0, 1]: {crop!r}")
    resize = raw.get("resize", RESIZE_MODES[0])
    input_range = raw.get("input_range", INPUT_RANGES[0])
    if resize not in RESIZE_MODES:
        raise MalformedFileError(path, f"preprocessing.resize {resize!r} not in {RESIZE_MODES}")
    if input_range not in INPUT_RANGES:
        raise MalformedFileError(path, f"preprocessing.input_range {input_range!r} unsupported")
    std = _triple(path, "std", raw.get("std"))
    if any(s <= 0 for s in std):
        raise MalformedFileError(path, "preprocessing.std must be positive")
    mean = _triple(path, "mean", raw.get("mean"))
    return Preprocessing(size, str(resize), float(crop), mean, std, str(input_range))


def _parse_classes(path: str, raw: object) -> tuple[ClassInfo, ...]:
    if not isinstance(raw, list) or not raw:
        raise MalformedFileError(path, "'classes' must be a non-empty list")
    classes = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise MalformedFileError(path, f"classes[{i}] needs a string 'name'")
        if item.get("index", i) != i:
            raise MalformedFileError(path, f"classes[{i}] has index {item.get('index')!r}")
        classes.append(ClassInfo(i, item["name"], mid=str(item.get("mid") or "")))
    return tuple(classes)


def _parse_model(raw: object) -> ModelInfo | None:
    if not isinstance(raw, dict):
        return None
    keys = ("name", "version", "architecture", "tta")
    return ModelInfo(**{k: str(raw[k]) for k in keys if isinstance(raw.get(k), str)})


def parse_labels(path: str, raw: object) -> Labels:
    """Validate a parsed ``labels.json``; ``path`` names the file in errors."""
    if not isinstance(raw, dict):
        raise MalformedFileError(path, "expected a JSON object")
    classes = _parse_classes(path, raw.get("classes"))
    task = raw.get("task", "singlelabel")
    if task not in TASKS:
        raise MalformedFileError(path, f"task {task!r} is not one of {', '.join(TASKS)}")
    return Labels(
        classes=classes,
        preprocessing=parse_preprocessing(path, raw.get("preprocessing")),
        model=_parse_model(raw.get("model")),
        task=task,
        thresholds=_parse_thresholds(path, raw.get("thresholds"), len(classes)),
    )


def _parse_thresholds(path: str, raw: object, classes: int) -> tuple[float, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != classes:
        raise MalformedFileError(path, f"'thresholds' must be a list of {classes} numbers")
    if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in raw):
        raise MalformedFileError(path, "'thresholds' must hold numbers")
    if not all(0.0 <= float(t) <= 1.0 for t in raw):
        raise MalformedFileError(path, "'thresholds' must lie in 0..1")
    return tuple(float(t) for t in raw)


def read_labels(path: Path) -> Labels:
    """Read and validate ``labels.json`` (``path`` is the file)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MalformedFileError(str(path), "file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedFileError(str(path), f"not valid JSON ({exc})") from exc
    return parse_labels(str(path), raw)


def write_labels(path: Path, labels: Labels) -> None:
    """Write ``labels.json`` atomically (UTF-8, names as written)."""
    write_text_atomic(path, json.dumps(labels.to_json(), indent=2, ensure_ascii=False) + "\n")


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.yaml`` as a plain mapping, for the few fields other stages show
    (``model``, ``image_size``, ...); empty when it is missing or unreadable. Training reads it
    whole, typed, with ``oiforge.train.config.read_config``."""
    import yaml

    try:
        data = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}
