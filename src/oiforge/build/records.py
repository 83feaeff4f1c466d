"""The typed values that flow through the build: tasks in, records out.

A worker gets one ``RenderTask`` (an image and the samples to cut from it) and returns one
``ImageRecord``; failures are statuses on the record or its samples, never exceptions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from oiforge.spec import BuildSpec

OK = "ok"


@dataclass(frozen=True)
class Box:
    """A normalized box (fractions of width and height)."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float


@dataclass(frozen=True)
class SampleTask:
    """One output sample: the whole image (``box`` None) or one box of it."""

    key: str  # unique in the dataset: <image_id> or <image_id>_<n>
    label_mid: str
    box_index: int | None
    box: Box | None


@dataclass(frozen=True)
class RenderTask:
    """One source image and every sample to cut from it."""

    image_id: str
    path: str  # the store file
    rotation: float | None
    samples: tuple[SampleTask, ...]


def task_hash(task: RenderTask) -> str:
    """A fingerprint of a task (its samples, boxes, rotation and store path)."""
    return hashlib.sha256(repr(task).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class RenderOptions:
    """The part of ``BuildSpec`` a worker needs (picklable, hashable)."""

    size: int
    aspect: str
    padding: float
    min_crop_side: int
    min_image_side: int
    jpeg_quality: int
    max_pixels: int

    @classmethod
    def from_spec(cls, spec: BuildSpec) -> RenderOptions:
        return cls(
            size=spec.size,
            aspect=spec.aspect,
            padding=spec.padding,
            min_crop_side=spec.min_crop_side,
            min_image_side=spec.min_image_side,
            jpeg_quality=spec.jpeg_quality,
            max_pixels=spec.max_pixels,
        )


@dataclass
class SampleResult:
    """What became of one sample: ``status`` is ``ok`` or the reason it was excluded."""

    key: str
    label_mid: str
    box_index: int | None
    status: str
    sha256: str = ""
    width: int = 0
    height: int = 0
    crop: str = ""  # a human note: the source rectangle and the resize
    size: int = 0  # bytes of the rendered file (0 in records of older versions)


@dataclass
class ImageRecord:
    """What became of one source image and its samples."""

    image_id: str
    status: str
    width: int = 0
    height: int = 0
    source_sha256: str = ""
    task_hash: str = ""  # the task it answers (a changed selection invalidates the cache)
    phash: str = ""  # 16 hex chars, perceptual hash of the upright image
    flags: tuple[str, ...] = ()
    samples: list[SampleResult] = field(default_factory=list)
    run: str = ""  # the render run that wrote it (a sharded build trusts its own run's records)

    def to_json(self) -> str:
        data = {k: getattr(self, k) for k in _RECORD_FIELDS}
        data["samples"] = [{k: getattr(s, k) for k in _SAMPLE_FIELDS} for s in self.samples]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ImageRecord:
        data: dict[str, Any] = json.loads(text)
        samples = [SampleResult(**s) for s in data.pop("samples")]
        data["flags"] = tuple(data["flags"])
        return cls(**data, samples=samples)


_RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ImageRecord) if f.name != "samples")
_SAMPLE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(SampleResult))
