"""The API's JSON shapes (pydantic, so they appear in the OpenAPI spec).

A multi-label model's answers carry more: each image's ``labels`` (every class at or above
its threshold), the model's ``task`` and each class's ``threshold``. A single-label model's
answers leave those keys out (:class:`Compact`), so their shape is what it always was.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Final, Self

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from oiforge.serve.holder import ItemPrediction
from oiforge.serve.inputs import FILE_FIELD, IMAGE_TYPES, MAX_TOP_K
from oiforge.serve.predictor import Predictor, Score


class Compact(BaseModel):
    """Leaves out the fields of :attr:`OMITTED_WHEN_NONE` that are None."""

    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        for name in self.OMITTED_WHEN_NONE:
            if getattr(self, name) is None:
                data.pop(name, None)
        return data


class ClassScore(BaseModel):
    index: int
    name: str
    mid: str
    probability: float


class ImagePrediction(Compact):
    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ("labels",)

    name: str
    width: int
    height: int
    top_k: list[ClassScore]
    labels: list[ClassScore] | None = Field(
        None,
        description="Multi-label models only: every class whose probability reaches its "
        "threshold, most probable first (may be empty).",
    )


class PredictResponse(BaseModel):
    model: str
    version: str
    predictions: list[ImagePrediction]
    latency_ms: float


def _score_dicts(scores: list[Score]) -> list[dict[str, Any]]:
    return [
        {"index": s.index, "name": s.name, "mid": s.mid, "probability": s.probability}
        for s in scores
    ]


def _item_dict(item: ItemPrediction) -> dict[str, Any]:
    out = {"name": item.name, "width": item.width, "height": item.height}
    out["top_k"] = _score_dicts(item.scores)
    if item.labels is not None:
        out["labels"] = _score_dicts(item.labels)
    return out


def predict_json(predictor: Predictor, items: list[ItemPrediction], seconds: float) -> bytes:
    """The body of a :class:`PredictResponse`, written directly: the hot path skips pydantic
    (building and serialising the models cost more than the JSON itself)."""
    body = {
        "model": predictor.labels.model_info.name,
        "version": predictor.version,
        "predictions": [_item_dict(item) for item in items],
        "latency_ms": round(seconds * 1000, 3),
    }
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


class ClassEntry(Compact):
    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ("threshold",)

    index: int
    name: str
    mid: str
    threshold: float | None = Field(None, description="Multi-label models only.")


class PreprocessingInfo(BaseModel):
    size: int
    resize: str
    crop_pct: float
    mean: list[float]
    std: list[float]
    input_range: str


class ModelResponse(Compact):
    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ("task",)

    name: str
    version: str
    architecture: str
    sha256: str
    classes: list[ClassEntry]
    preprocessing: PreprocessingInfo
    task: str | None = Field(None, description="`multilabel` for multi-label models only.")

    @classmethod
    def of(cls, predictor: Predictor) -> Self:
        labels = predictor.labels
        cut = labels.cutoffs if labels.multilabel else [None] * len(labels.classes)
        return cls(
            name=labels.model_info.name,
            version=predictor.version,
            architecture=labels.model_info.architecture,
            sha256=predictor.sha256,
            classes=[
                ClassEntry(index=c.index, name=c.name, mid=c.mid, threshold=t)
                for c, t in zip(labels.classes, cut, strict=True)
            ],
            preprocessing=PreprocessingInfo(**labels.preprocessing.to_json()),
            task=labels.task if labels.multilabel else None,
        )


class ErrorDetail(BaseModel):
    code: str
    message: str
    index: int | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in [
        (400, "Malformed body"),
        (401, "Missing or wrong API key"),
        (413, "Body, image count or image pixels over the limit"),
        (415, "Unsupported content type"),
        (422, "Invalid input (not an image, bad field, bad top_k, URL failed)"),
        (503, "Model not loaded yet, shutting down, or overloaded (see Retry-After)"),
    ]
}

_TOP_K: Final = {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K}
_JSON_IMAGE: Final = {
    "type": "object",
    "properties": {
        "data": {"type": "string", "description": "base64 image bytes (or a data: URL)"},
        "url": {"type": "string", "description": "http(s) URL of an image"},
        "name": {"type": "string"},
    },
    "additionalProperties": False,
}
PREDICT_QUERY: Final = [
    {
        "name": "top_k",
        "in": "query",
        "required": False,
        "schema": {"anyOf": [_TOP_K, {"type": "null"}], "title": "Top K"},
    }
]
PREDICT_BODY: Final = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    FILE_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"}},
                    "top_k": _TOP_K,
                },
                "required": [FILE_FIELD],
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"images": {"type": "array", "items": _JSON_IMAGE}, "top_k": _TOP_K},
                "required": ["images"],
                "additionalProperties": False,
            }
        },
        **{t: {"schema": {"type": "string", "format": "binary"}} for t in sorted(IMAGE_TYPES)},
    },
}
