"""The API's JSON shapes (pydantic, so they appear in the OpenAPI spec)."""

from __future__ import annotations

from typing import Any, Final, Self

from pydantic import BaseModel

from oiforge.serve.holder import ItemPrediction
from oiforge.serve.inputs import FILE_FIELD, IMAGE_TYPES, MAX_TOP_K
from oiforge.serve.predictor import Predictor


class ClassScore(BaseModel):
    index: int
    name: str
    mid: str
    probability: float


class ImagePrediction(BaseModel):
    name: str
    width: int
    height: int
    top_k: list[ClassScore]


class PredictResponse(BaseModel):
    model: str
    version: str
    predictions: list[ImagePrediction]
    latency_ms: float

    @classmethod
    def of(cls, predictor: Predictor, items: list[ItemPrediction], seconds: float) -> Self:
        predictions = [
            ImagePrediction(
                name=item.name,
                width=item.width,
                height=item.height,
                top_k=[ClassScore(**vars(s)) for s in item.scores],
            )
            for item in items
        ]
        return cls(
            model=predictor.labels.model_info.name,
            version=predictor.version,
            predictions=predictions,
            latency_ms=round(seconds * 1000, 3),
        )


class ClassEntry(BaseModel):
    index: int
    name: str
    mid: str


class PreprocessingInfo(BaseModel):
    size: int
    resize: str
    crop_pct: float
    mean: list[float]
    std: list[float]
    input_range: str


class ModelResponse(BaseModel):
    name: str
    version: str
    architecture: str
    sha256: str
    classes: list[ClassEntry]
    preprocessing: PreprocessingInfo

    @classmethod
    def of(cls, predictor: Predictor) -> Self:
        labels = predictor.labels
        return cls(
            name=labels.model_info.name,
            version=predictor.version,
            architecture=labels.model_info.architecture,
            sha256=predictor.sha256,
            classes=[ClassEntry(index=c.index, name=c.name, mid=c.mid) for c in labels.classes],
            preprocessing=PreprocessingInfo(**labels.preprocessing.to_json()),
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
