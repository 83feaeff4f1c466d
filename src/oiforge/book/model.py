"""The book plan (``book.json``), the options that shape a book, and where they come from.

A plan lists, per letter, the chosen class and its candidate photos in preference order, plus
every option. ``oiforge book plan`` writes a *draft* plan (more candidates than pages need);
``oiforge book render`` prints from it and writes the *final* plan, whose photos are exactly
the printed ones, so rendering the final plan again gives byte-identical PDFs.

Settings come from a YAML file (``examples/book.yaml``: flat keys, any ``LayoutOptions`` or
``SelectOptions`` field plus ``pick``, ``skip``, ``custom`` and ``overrides``) and flags; flags
win over the file, the file over a preset, a preset over the defaults. Your own photos come
from folders (``--custom Family=photos/family``); a review file drops or forces photos::

    drop: [0a1b2c3d4e5f6a7b, ...]        # never print these ImageIDs
    force:                               # print these first for a letter (if people-free)
      A: [1f2e3d4c5b6a7980]
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from oiforge.atomic import write_text_atomic
from oiforge.book.layout import create_geometry, resolve_preset
from oiforge.book.words import letter_of
from oiforge.contracts import is_image_id
from oiforge.errors import InvalidInputError, MalformedFileError, SpecError

PLAN_FORMAT = 2  # 2: grids up to 5x5, presets, licence options; no font choice
LETTERS = tuple(string.ascii_uppercase)
GRID_SIZES = (1, 4, 9, 16, 25)


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
    """How pages look: trim size, bleed, margins, grid, resolution, cover, print preset."""

    title: str = "My First Open Images Book"
    subtitle: str = ""
    author: str = ""
    dedication: str = ""
    trim: str = "8.5x8.5"  # inches "WxH", "WxHmm", or a name: A4, A5, letter, 8x10 ...
    bleed: bool = False
    bleed_in: float = Field(default=0.125, ge=0.0, le=1.0)
    margin_in: float = Field(default=0.5, ge=0.0, le=3.0)
    min_dpi: int = Field(default=300, ge=1, le=2400)
    max_photos: int = 25
    grid: int = Field(default=0, ge=0, le=5)  # 0: by the photos there are; n: n x n always
    spine_in: float | None = Field(default=None, ge=0.0, le=10.0)
    spread: bool = False  # two pages per letter: the letter on the left, photos on the right
    jpeg_quality: int = Field(default=90, ge=1, le=100)
    preset: str = ""  # a print service (layout.PRESETS): its page rules, bleed, spine
    paper: str = ""  # the preset's paper (spine width); empty: its first

    @model_validator(mode="after")
    def _fits(self) -> LayoutOptions:
        try:
            create_geometry(self.trim, self.bleed_in, self.margin_in)
            if self.preset:
                preset = resolve_preset(self.preset)
                if self.paper and self.paper not in preset.papers:
                    raise InvalidInputError(
                        f"paper {self.paper!r}: {preset.name} has {', '.join(preset.papers)}"
                    )
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
    commercial: bool = False  # leave out non-commercial (NC) licences
    no_derivatives: Literal["fit", "omit"] = "fit"  # ND photos: never cropped, or left out
    seed: int = 0
    pins: dict[str, str] = Field(default_factory=dict)
    skip: tuple[str, ...] = ()
    candidates_per_letter: int = Field(default=40, ge=1, le=1000)
    min_photos: int = Field(default=1, ge=1, le=25)


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


# -- settings files and flags ------------------------------------------------------------
EXTRA_KEYS = ("pick", "custom", "overrides")


def load_config(path: str | Path | None) -> dict[str, Any]:
    """The YAML mapping (empty without a file); relative paths resolve beside the file."""
    if path is None:
        return {}
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"book config {p}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"book config {p}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"book config {p}: a mapping of settings (see examples/book.yaml)")
    return read_settings(data, f"book config {p}", p.parent)


def setting_keys() -> list[str]:
    """Every key a book settings mapping may have (sorted)."""
    fields = set(LayoutOptions.model_fields) | set(SelectOptions.model_fields) - {"pins"}
    return sorted(fields | set(EXTRA_KEYS))


def read_settings(data: Mapping[str, Any], source: str, base: Path) -> dict[str, Any]:
    """Book settings (a settings file's mapping, or a spec's ``book:`` section) with their
    keys checked and relative ``overrides``/``custom`` paths resolved against ``base``."""
    unknown = sorted(str(k) for k in data if k not in setting_keys())
    if unknown:
        raise SpecError(
            f"{source}: unknown settings {', '.join(unknown)} "
            f"(valid keys: {', '.join(setting_keys())})"
        )
    out = dict(data)
    if isinstance(out.get("overrides"), str):
        out["overrides"] = str((base / out["overrides"]).expanduser())
    if isinstance(out.get("custom"), dict):
        out["custom"] = {k: str((base / str(v)).expanduser()) for k, v in out["custom"].items()}
    return out


def parse_letter_map(text: str, what: str = "--pick") -> dict[str, str]:
    """``A=Apple,B=Bird`` -> ``{"A": "Apple", "B": "Bird"}`` (letters upper-cased)."""
    out: dict[str, str] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        letter, sep, value = item.partition("=")
        letter, value = letter.strip().upper(), value.strip()
        if not sep or len(letter) != 1 or not "A" <= letter <= "Z" or not value:
            raise InvalidInputError(f"{what} {item!r}: write LETTER=Class, e.g. A=Apple,B=Bird")
        if letter in out:
            raise InvalidInputError(f"{what}: letter {letter} given twice")
        out[letter] = value
    return out


def parse_letters(text: str, what: str = "--skip") -> tuple[str, ...]:
    """``X,Q`` -> ``("Q", "X")``."""
    letters = {p.strip().upper() for p in text.split(",") if p.strip()}
    bad = sorted(x for x in letters if len(x) != 1 or not "A" <= x <= "Z")
    if bad:
        raise InvalidInputError(f"{what}: not letters A-Z: {', '.join(bad)}")
    return tuple(sorted(letters))


def _as_text_map(value: Any, what: str) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, str):
        return value
    raise SpecError(f"{what}: a mapping LETTER: Class (or 'A=Apple,B=Bird')")


def _section(model: type[Any], settings: Mapping[str, Any]) -> Any:
    fields = {k: v for k, v in settings.items() if k in model.model_fields and v is not None}
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or model.__name__
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SpecError(f"book setting {where}: {message}") from exc


def _with_preset(settings: dict[str, Any]) -> dict[str, Any]:
    """A preset's trim, bleed, margin and dpi, unless set explicitly."""
    if not settings.get("preset"):
        return settings
    try:
        preset = resolve_preset(str(settings["preset"]))
    except InvalidInputError as exc:
        raise SpecError(f"book setting preset: {exc}") from exc
    out = dict(settings)
    out.setdefault("trim", preset.trim)
    out.setdefault("bleed", True)
    out.setdefault("bleed_in", preset.bleed_in)
    out["margin_in"] = max(float(out.get("margin_in", 0.5)), preset.safe_margin_in)
    out.setdefault("min_dpi", preset.min_dpi)
    out["preset"] = preset.name
    return out


def build_request(file_settings: Mapping[str, Any], flags: Mapping[str, Any]) -> PlanRequest:
    """Merge flags (``None`` = not given) over file settings into a ``PlanRequest``."""
    merged = {**file_settings, **{k: v for k, v in flags.items() if v is not None}}
    pins = parse_letter_map(_as_text_map(merged.get("pick", {}), "pick"))
    skip = merged.get("skip", ())
    skip_text = ",".join(skip) if isinstance(skip, list | tuple) else str(skip)
    select = _section(SelectOptions, {**merged, "pins": pins, "skip": parse_letters(skip_text)})
    merged = _with_preset(merged)
    layout = _section(LayoutOptions, merged)
    custom_raw = merged.get("custom") or {}
    items = (
        [f"{k}={v}" for k, v in custom_raw.items()]
        if isinstance(custom_raw, dict)
        else list(custom_raw)
    )
    customs = tuple(parse_custom(item) for item in items)
    overrides = load_overrides(merged["overrides"]) if merged.get("overrides") else Overrides()
    return PlanRequest(layout=layout, select=select, custom=customs, overrides=overrides)


# -- your own photos and the review file ----------------------------------------------------


@dataclass(frozen=True)
class CustomClass:
    """A page made from your own photos: ``Family=./photos/family``."""

    name: str
    folder: Path
    letter: str


def parse_custom(text: str) -> CustomClass:
    """``NAME=FOLDER`` (the page's letter is the name's first letter)."""
    name, sep, folder = text.partition("=")
    name = name.strip()
    letter = letter_of(name) if name else None
    if not sep or not folder.strip() or letter is None:
        raise InvalidInputError(
            f"--custom {text!r}: write NAME=FOLDER with a name starting with A-Z, "
            "e.g. Family=./photos/family"
        )
    path = Path(folder.strip()).expanduser()
    if not path.is_dir():
        raise InvalidInputError(f"--custom {name}: {path} is not a folder")
    return CustomClass(name, path.resolve(), letter)


@dataclass(frozen=True)
class Overrides:
    """Photos to drop everywhere and to force (first) per letter."""

    drop: frozenset[str] = frozenset()
    force: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _ids(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(is_image_id(v) for v in value):
        raise SpecError(f"{where}: a list of ImageIDs (16 hex characters)")
    return tuple(value)


def load_overrides(path: str | Path) -> Overrides:
    """Read the overrides YAML; anything unexpected is a ``SpecError`` naming the key."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"overrides file {p}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"overrides file {p}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or set(data) - {"drop", "force"}:
        raise SpecError(f"overrides file {p}: only `drop:` and `force:` are allowed")
    drop = frozenset(_ids(data.get("drop", []), f"{p}: drop"))
    force_raw = data.get("force", {}) or {}
    if not isinstance(force_raw, dict):
        raise SpecError(f"{p}: force: a mapping LETTER: [ImageID, ...]")
    force: dict[str, tuple[str, ...]] = {}
    for key, value in force_raw.items():
        letter = str(key).strip().upper()
        if len(letter) != 1 or not "A" <= letter <= "Z":
            raise SpecError(f"{p}: force: {key!r} is not a letter A-Z")
        force[letter] = _ids(value, f"{p}: force: {letter}")
    return Overrides(drop, force)


@dataclass(frozen=True)
class PlanRequest:
    """Everything ``plan_book`` needs besides the catalog."""

    layout: LayoutOptions = field(default_factory=LayoutOptions)
    select: SelectOptions = field(default_factory=SelectOptions)
    custom: tuple[CustomClass, ...] = ()
    overrides: Overrides = field(default_factory=Overrides)
