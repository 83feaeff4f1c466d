"""``oiforge estimate``: time and cost of a training run, here and per GPU instance type.

Measured here, for a few steps: the chosen model's throughput (training steps, or feature
extraction in probe mode), the reference model's at the same size (to scale the GPU table's
reference figure to the chosen model), and the decode + augment rate of one core on real
files of the dataset. The GPU table (``data/train/gpu_instances.yaml``) gives relative
throughput, $/hour and vCPUs; a GPU faster than its vCPUs can decode is flagged.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from oiforge.errors import InvalidInputError, MalformedFileError
from oiforge.paths import package_data
from oiforge.train.config import DEFAULT_MODEL, SCRATCH_MODEL
from oiforge.train.dataset import open_dataset
from oiforge.train.images import ImageDataset, train_transform
from oiforge.train.models import create_model, extract_features, preprocessing_for

REFERENCE_SIZE = 224
#: Smaller inputs speed a GPU up by less than the pixel ratio (launch overheads dominate).
MAX_SMALL_IMAGE_GAIN = 4.0


@dataclass(frozen=True)
class Option:
    name: str
    img_s: float
    hours: float
    usd: float
    note: str = ""


@dataclass
class Estimate:
    images: int
    epochs_effective: int
    here_img_s: float
    here_what: str
    decode_img_s_per_core: float
    rows: list[Option] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def load_instances(path: Path | None = None) -> dict[str, Any]:
    """The instance table (the shipped one unless ``path``)."""
    source = path or package_data("train", "gpu_instances.yaml")
    try:
        table = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        for row in table["instances"]:
            float(row["usd_per_hour"]), float(row["relative_throughput"]), int(row["vcpus"])
        float(table["reference_img_s"])
    except FileNotFoundError as exc:
        raise InvalidInputError(f"no instance table at {source}") from exc
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise MalformedFileError(str(source), f"bad instance table: {exc}") from exc
    return table  # type: ignore[no-any-return]


def measure_model(model_name: str, mode: str, size: int, batch: int, steps: int) -> float:
    """Images/s of this machine: training steps, or feature extraction for probe."""
    pretrained = model_name == DEFAULT_MODEL and mode != "scratch"
    model = create_model(model_name, 10, pretrained=pretrained)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        if mode == "probe":
            with torch.no_grad():
                extract_features(model, x)
            return
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()

    model.train(mode != "probe")
    step()  # warm-up: allocations, kernels
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def measure_decode(dataset: Path, size: int, count: int = 24) -> float:
    """Decode + light augmentation of real dataset files on one core (images/s)."""
    index = open_dataset(dataset)
    samples = index.splits["train"][:count]
    prep = preprocessing_for(DEFAULT_MODEL, size, 0.875)
    ds = ImageDataset(samples, train_transform(prep, "light"), size)
    start = time.perf_counter()
    done = sum(1 for i in range(len(ds)) if ds[i][0] is not None)
    return done / max(time.perf_counter() - start, 1e-9)


def estimate(
    dataset: str | Path,
    *,
    model: str = DEFAULT_MODEL,
    mode: str = "finetune",
    epochs: int = 20,
    image_size: int = 224,
    batch_size: int = 32,
    steps: int = 3,
    table_path: Path | None = None,
) -> Estimate:
    """Measure here, then estimate hours and dollars per option of the instance table.
    ``auto`` is priced as its costliest candidate (finetune, for ``epochs``); ``partial`` as
    its forward passes (one per cached view: the few trained blocks cost little beside them)."""
    if mode not in ("auto", "probe", "partial", "finetune", "scratch"):
        raise InvalidInputError(f"unknown mode {mode!r}: auto, probe, partial, finetune or scratch")
    views = 3 if mode == "partial" else 1
    mode = {"auto": "finetune", "partial": "probe"}.get(mode, mode)
    table = load_instances(table_path)
    if mode == "scratch" and model == DEFAULT_MODEL:
        model = SCRATCH_MODEL
    index = open_dataset(dataset)
    images = len(index.splits["train"]) + len(index.splits.get("val", []))
    passes = views if mode == "probe" else epochs
    here = measure_model(model, mode, image_size, batch_size, steps)
    ref = (
        here
        if model == DEFAULT_MODEL and mode != "probe"
        else measure_model(DEFAULT_MODEL, "finetune", image_size, batch_size, steps)
    )
    decode = measure_decode(Path(dataset), image_size)
    result = Estimate(
        images, passes, here, "feature extraction" if mode == "probe" else "training", decode
    )
    cores = os.cpu_count() or 1
    result.rows.append(
        Option(
            f"this machine ({cores} CPU cores)",
            here,
            images * passes / here / 3600,
            0.0,
            "measured",
        )
    )
    size_gain = min(MAX_SMALL_IMAGE_GAIN, (REFERENCE_SIZE / image_size) ** 2)
    gpu_scale = (here / ref) * size_gain * float(table["reference_img_s"])
    for inst in table["instances"]:
        result.rows.append(_gpu_option(inst, gpu_scale, decode, images * passes, result.warnings))
    return result


def _gpu_option(
    inst: dict[str, Any], scale: float, decode: float, work: int, warnings: list[str]
) -> Option:
    gpu = scale * float(inst["relative_throughput"])
    pipeline = decode * max(1, int(inst["vcpus"]) - 1)
    note = ""
    if pipeline < gpu:
        note = "data-bound"
        warnings.append(
            f"{inst['name']}: the data pipeline ({decode:.0f} img/s per core x "
            f"{int(inst['vcpus']) - 1} cores = {pipeline:.0f} img/s) would limit the GPU "
            f"({gpu:.0f} img/s); pre-resize the images or choose more vCPUs"
        )
    img_s = min(gpu, pipeline)
    hours = work / img_s / 3600
    return Option(inst["name"], img_s, hours, hours * float(inst["usd_per_hour"]), note)
