"""The book plan: what ``book.json`` holds, and the options that shape a book.

A plan lists, per letter, the chosen class and its candidate photos in preference order,
plus every option. ``oiforge book plan`` writes a *draft* plan (more candidates than pages
need); ``oiforge book render`` prints from it and writes the *final* plan, whose photos are
exactly the printed ones, so rendering the final plan again gives byte-identical PDFs.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from oiforge.atomic import write_text_atomic
from oiforge.book.geometry import create_geometry
from oiforge.errors import InvalidInputError, MalformedFileError

PLAN_FORMAT = 1
LETTERS = tuple(string.ascii_uppercase)
GRID_SIZES = (1, 4, 9, 16)
PhotoStatus = Literal["candidate", "printed"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Box(_Frozen):
    """A normalized box (0..1) to crop the photo to."""

    x_min: float = Field(ge=0.0, le=1.0)
    x_max: float = Field(ge=0.0, le=1.0)
    y_min: float = Field(ge=0.0, le=1.0)
    y_max: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Box:
        if self.x_min >= self.x_max or self.y_min >= self.y_max:
            raise ValueError("a box needs x_min < x_max and y_min < y_max")
        return self


class Photo(_Frozen):
    """One photo: an Open Images ImageID (``source='openimages'``) or a local file."""

    image_id: str  # 16 hex chars, or ``local-<sha256[:16]>`` for a local photo
    source: Literal["openimages", "local"] = "openimages"
    split: str = ""
    path: str | None = None  # local photos only
    sha256: str | None = None  # local photos only: the file must not change between renders
    box: Box | None = None
    title: str = ""
    author: str = ""
    author_profile_url: str = ""
    license: str = ""
    landing_url: str = ""
    original_url: str = ""
    thumbnail_url: str = ""
    original_size: int | None = None
    original_md5: str = ""
    rotation: float | None = None


class LetterPlan(_Frozen):
    """One letter's page: the class shown and its photos (best first)."""

    letter: str
    label: str  # the word printed on the page ("Apple")
    class_name: str  # the catalog display name ("Apple", "Bat (Animal)") or a custom name
    mid: str = ""  # empty for a custom class
    positives: int = 0  # human-verified positive images of the class in the catalog
    photos: tuple[Photo, ...] = ()

    @field_validator("letter")
    @classmethod
    def _one_letter(cls, value: str) -> str:
        if value not in LETTERS:
            raise ValueError(f"letter must be one of A-Z, got {value!r}")
        return value


class LayoutOptions(_Frozen):
    """How pages look: trim size, bleed, margins, fonts, grid, cover."""

    title: str = "My First Open Images Book"
    subtitle: str = ""
    author: str = ""
    trim: str = "8.5x8.5"  # inches "WxH", "WxHmm", or a name: A4, A5, letter, 8x10 ...
    bleed: bool = False
    bleed_in: float = Field(default=0.125, ge=0.0, le=1.0)
    margin_in: float = Field(default=0.5, ge=0.0, le=3.0)
    min_dpi: int = Field(default=300, ge=1, le=2400)
    max_photos: int = 9
    spine_in: float | None = Field(default=None, ge=0.0, le=10.0)
    spread: bool = False  # two pages per letter: the letter on the left, photos on the right
    font: Literal["DejaVuSans", "Vera"] = "DejaVuSans"
    jpeg_quality: int = Field(default=90, ge=1, le=100)

    @model_validator(mode="after")
    def _fits(self) -> LayoutOptions:
        try:
            create_geometry(self.trim, self.bleed_in, self.margin_in)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from exc
        return self

    @field_validator("max_photos")
    @classmethod
    def _grid(cls, value: int) -> int:
        if value not in GRID_SIZES:
            raise ValueError(f"max_photos must be one of {GRID_SIZES}, got {value}")
        return value


class SelectOptions(_Frozen):
    """How classes and photos were chosen (kept so a plan explains itself)."""

    version: str = "v7"
    label_mode: Literal["image", "box"] = "image"
    exclude_depictions: bool = True
    cc_by_only: bool = False
    seed: int = 0
    pins: dict[str, str] = Field(default_factory=dict)
    skip: tuple[str, ...] = ()
    candidates_per_letter: int = Field(default=24, ge=1, le=1000)
    min_photos: int = Field(default=1, ge=1, le=16)


class BookPlan(_Frozen):
    """The whole book: ``book.json``."""

    format: int = PLAN_FORMAT
    status: Literal["draft", "final"] = "draft"
    layout: LayoutOptions = LayoutOptions()
    select: SelectOptions = SelectOptions()
    letters: tuple[LetterPlan, ...] = ()
    skipped: dict[str, str] = Field(default_factory=dict)  # letter -> why
    notes: tuple[str, ...] = ()  # what the planner wants a reviewer to know

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, 2-space indent, trailing newline)."""
        data = self.model_dump(mode="json")
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_plan(plan: BookPlan, path: str | Path) -> None:
    """Write ``book.json`` atomically."""
    write_text_atomic(path, plan.to_json())


def read_plan(path: str | Path) -> BookPlan:
    """Read and validate ``book.json``; a bad file raises ``MalformedFileError``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MalformedFileError(str(p), "not found (run `oiforge book plan` first)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise MalformedFileError(str(p), f"unreadable: {exc}") from exc
    try:
        return BookPlan.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top)"
        raise MalformedFileError(str(p), f"{where}: {first['msg']}") from exc
