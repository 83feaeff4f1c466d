"""The dataset spec: one YAML file that says what to select, download, build, train, evaluate,
export (and print as a book, present), run end to end by ``oiforge run SPEC``.

Every section has defaults, so the smallest spec is ``classes: [Cat, Dog]``. The spec is frozen
and hashed (``spec_hash``: what the dataset is, i.e. the select, download and build fields);
the hash travels in selection.parquet and the lock file. Every key, with its CLI option, is in
docs/spec.md; an unknown key is an error that lists the valid keys of its section.

Example::

    name: sandwiches
    version: v6
    label_mode: box
    classes:
      - Hamburger
      - {name: Sandwich, expand: true, exclude_subclasses: [Hamburger]}
    exclude_images_with: [Person, Human face]
    per_class: 200
    seed: 0
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from oiforge.errors import SpecError

VERSIONS = ("v1", "v2", "v3", "v4", "v5", "v6", "v7")
FlagRule = Literal["keep", "drop", "only"]
NegativesMode = Literal["none", "verified", "random", "both"]
TaskName = Literal["singlelabel", "multilabel"]
#: The formats a ``multilabel`` build can write (class folders hold one class a photo).
MULTILABEL_FORMATS = ("parquet", "webdataset")
TtaName = Literal["none", "flip", "multi-crop"]


class _Frozen(BaseModel):
    # defer_build: a model's validator is built when it first validates, not at import (the
    # dozen models of this module cost ~40 ms of every command's start; most use one or two)
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    #: keys added after datasets were first built, with their defaults: a key at its default
    #: is left out of the canonical form (:meth:`canonical`), so the hash of a spec that does
    #: not use it, and the files that record it (selection, card, lock), stay byte-identical.
    ADDED_LATER: ClassVar[dict[str, Any]] = {}

    def canonical(self) -> dict[str, Any]:
        """The JSON form that hashes and records use (see ``ADDED_LATER``)."""
        data = self.model_dump(mode="json")
        for key in self.ADDED_LATER:
            if getattr(self, key) == self.ADDED_LATER[key]:
                del data[key]
        for key, value in self:
            if isinstance(value, _Frozen):
                data[key] = value.canonical()
        return data


def canonical_hash(spec: _Frozen) -> str:
    """SHA-256 (first 16 hex) of the canonical JSON of a spec or one of its sections."""
    canon = json.dumps(spec.canonical(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


class ClassSpec(_Frozen):
    """One class to select: a display name or MID, optionally with its sub-classes."""

    name: str
    expand: bool = False  # include sub-classes (Subcategory links of the hierarchy)
    exclude_subclasses: tuple[str, ...] = ()  # sub-trees to leave out when expanding
    rename: str | None = None  # the class name in the dataset (default: the display name)


class BoxFlags(_Frozen):
    """What to do with boxes carrying each flag: keep them, drop them, or keep only them."""

    is_occluded: FlagRule = "keep"
    is_truncated: FlagRule = "keep"
    is_group_of: FlagRule = "drop"
    is_depiction: FlagRule = "keep"
    is_inside: FlagRule = "keep"


class SelectSpec(_Frozen):
    """What the catalog selects (``oiforge select``)."""

    version: Literal["v1", "v2", "v3", "v4", "v5", "v6", "v7"] = "v7"
    classes: tuple[ClassSpec, ...]
    exclude_images_with: tuple[str, ...] = ()  # drop any image that also has one of these
    label_mode: Literal["image", "box"] = "image"
    min_confidence: float | None = None  # set to also use machine labels at >= this confidence
    box_flags: BoxFlags = BoxFlags()
    splits: tuple[Literal["train", "validation", "test"], ...] = ("train", "validation", "test")
    per_class: int | None = Field(default=None, ge=1)
    balanced: bool = False  # cap every class at the smallest class's count
    seed: int = 0
    multi_label: Literal["drop", "keep-first", "multi"] = "drop"
    #: ``multi``: a verified positive also counts for every selected ancestor class, a
    #: verified negative for every selected descendant (the official metric's expansion)
    expand_up: bool = False
    #: add images without the classes ("X vs not X"): humans verified them as not showing a
    #: class (``verified``), drawn from images with no positive label of any selected class
    #: or its sub-classes (``random``), or verified first and random for the rest (``both``)
    negatives: NegativesMode = "none"
    negatives_ratio: float = Field(default=1.0, gt=0)  # negatives per split: ratio x positives
    negatives_class: str | None = None  # their class name (default "not <class>")

    ADDED_LATER: ClassVar[dict[str, Any]] = {
        "expand_up": False,
        "negatives": "none",
        "negatives_ratio": 1.0,
        "negatives_class": None,
    }

    @field_validator("classes", mode="before")
    @classmethod
    def _names_to_specs(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple({"name": v} if isinstance(v, str) else v for v in value)
        return value

    @model_validator(mode="after")
    def _check(self) -> SelectSpec:
        if not self.classes:
            raise ValueError("select at least one class")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError("min_confidence must be within [0, 1]")
        if self.expand_up and self.multi_label != "multi":
            raise ValueError("expand_up needs multi_label: multi (a photo gets several labels)")
        if self.negatives != "none" and self.label_mode != "image":
            raise ValueError("negatives are whole photos: use label_mode image")
        if self.negatives_class is not None and not self.negatives_class.strip():
            raise ValueError("negatives_class must not be empty")
        return self

    def negatives_name(self) -> str:
        """The class name of the added negatives: ``negatives_class``, or ``not <class>``
        (``not <A> or <B>`` for a few classes, ``none of the N classes`` for many)."""
        if self.negatives_class is not None:
            return self.negatives_class.strip()
        names = [c.rename or c.name for c in self.classes]
        if len(names) <= 3:
            return "not " + " or ".join(names)
        return f"none of the {len(names)} classes"


class DownloadSpec(_Frozen):
    """How images are fetched (``oiforge download``)."""

    sources: tuple[Literal["resized", "original", "thumbnail"], ...] = (
        "resized",
        "original",
        "thumbnail",
    )
    max_side: int | None = Field(default=None, ge=16)
    jpeg_quality: int = Field(default=90, ge=1, le=100)
    max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)


class BuildSpec(_Frozen):
    """How the dataset is built (``oiforge build``)."""

    #: ``singlelabel``: one class per sample (class folders work); ``multilabel``: one sample
    #: per photo with its verified positive and negative labels (Parquet, WebDataset)
    task: TaskName = "singlelabel"
    formats: tuple[Literal["folders", "webdataset", "parquet"], ...] = ("folders",)
    size: int = Field(default=256, ge=16)
    aspect: Literal["keep", "square-pad", "square-crop"] = "keep"
    padding: float = Field(default=0.05, ge=0.0, le=1.0)
    min_crop_side: int = Field(default=32, ge=1)
    min_image_side: int = Field(default=64, ge=1)
    jpeg_quality: int = Field(default=90, ge=1, le=100)
    split: Literal["official"] | tuple[float, float, float] = "official"
    split_seed: int = 0
    dedupe: bool = True
    near_duplicate_distance: int = Field(default=4, ge=0, le=64)
    shard_size: int = Field(default=1000, ge=1)
    max_pixels: int = Field(default=64_000_000, ge=1)  # larger images are decompression bombs

    ADDED_LATER: ClassVar[dict[str, Any]] = {"task": "singlelabel"}

    @model_validator(mode="before")
    @classmethod
    def _multilabel_formats(cls, data: Any) -> Any:
        """A multi-label build without formats named writes Parquet (for tables and Hugging
        Face ``datasets``) and WebDataset shards (what ``oiforge train`` reads); class folders
        cannot hold several labels a photo."""
        if isinstance(data, dict) and data.get("task") == "multilabel" and "formats" not in data:
            return {**data, "formats": ("parquet", "webdataset")}
        return data

    @model_validator(mode="after")
    def _check_build(self) -> BuildSpec:
        if not self.formats:
            raise ValueError("choose at least one format")
        if self.task == "multilabel" and "folders" in self.formats:
            raise ValueError(
                "task multilabel cannot use the folders format (a photo with several labels "
                f"has no one class folder): use {' or '.join(MULTILABEL_FORMATS)}"
            )
        if isinstance(self.split, tuple) and (
            min(self.split) < 0 or abs(sum(self.split) - 1.0) > 1e-6
        ):
            raise ValueError("split fractions must be >= 0 and sum to 1, e.g. 0.8,0.1,0.1")
        return self


# -- how each stage runs: the keys `oiforge run` adds to the sections above --------------------
# They change how a stage runs or where its inputs come from, not what the dataset is, so they
# stay out of ``spec_hash()`` and the dataset's lock. Each names the CLI option it stands for;
# docs/spec.md lists every key (scripts/gen_spec_reference.py).
Backend = Literal["local", "ray"]


class SelectSection(SelectSpec):
    """The spec's ``select:`` section: :class:`SelectSpec` plus how to run ``oiforge select``."""

    review: str | None = None  # --review: a label review file (oiforge browse)
    catalog: str | None = None  # --catalog: a postgresql:// catalog (oiforge pg load)
    no_fetch: bool = False  # --no-fetch: fail instead of fetching missing metadata


class DownloadSection(DownloadSpec):
    """The spec's ``download:`` section: :class:`DownloadSpec` plus ``oiforge download``'s
    connection, retry and scale-out options."""

    connections: int = Field(default=64, ge=1)
    per_host: int = Field(default=32, ge=1)
    rate_per_host: float | None = Field(default=None, gt=0)
    total_timeout_s: float = Field(default=120.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    retries: int = Field(default=3, ge=0)
    retry_failed: bool = False
    workers: int = Field(default=0, ge=0)  # processes for resizing (0: threads)
    processes: int = Field(default=0, ge=0, le=256)  # fetch processes (0: auto)
    limit: int | None = Field(default=None, ge=1)
    backend: Backend = "local"
    ray_address: str | None = None
    shards: int | None = Field(default=None, ge=1)


class BuildSection(BuildSpec):
    """The spec's ``build:`` section: :class:`BuildSpec` plus ``oiforge build``'s input files
    (paths relative to the spec file) and scale-out options."""

    exclude_list: str | None = None
    review: str | None = None
    catalog: str | None = None  # a catalog folder whose file MD5s the lock records
    workers: int | None = Field(default=None, ge=1)
    backend: Backend = "local"
    ray_address: str | None = None
    shards: int | None = Field(default=None, ge=1)


class EvaluateSpec(_Frozen):
    """The spec's ``evaluate:`` section (``oiforge evaluate``)."""

    dataset: str | None = None  # another dataset to test on (default: the one built)
    batch_size: int = Field(default=64, ge=1)
    workers: int = Field(default=2, ge=0)
    worst: int = Field(default=12, ge=0)
    tta: TtaName = "none"  # test-time augmentation: none | flip | multi-crop
    target_precision: float | None = Field(default=None, gt=0, le=1)  # multi-label thresholds


class ExportSpec(_Frozen):
    """The spec's ``export:`` section (``oiforge export``)."""

    tta: TtaName = "none"  # test-time augmentation inside the ONNX graph


class PresentSpec(_Frozen):
    """The spec's ``present:`` section (``oiforge present``); present runs only with one."""

    pdf: bool = False
    learning_curve: bool = True
    estimate: bool = True
    target: float = Field(default=0.9, ge=0.01, le=0.999)
    peak_rps: float = Field(default=10.0, ge=0.001)
    usd_per_hour: float | None = Field(default=None, ge=0.0)
    prices: str | None = None
    serve_bench: str | None = None  # default: bench/results/bench_serve.json (current folder)
    chromium: str | None = None


class EndpointsSpec(_Frozen):
    """Where remote files come from (default: the real hosts, or ``$OIFORGE_MIRROR``)."""

    mirror: str | None = None  # an `oiforge mirror` for all three
    metadata_base: str | None = None
    images_base: str | None = None
    flickr_base: str | None = None


#: The sections whose keys belong to another stage's own config (checked by `oiforge run`
#: against it, so new options there need no change here): ``train:`` takes TrainConfig's
#: fields, ``book:`` the keys of a book settings file (examples/book.yaml).
OpenSection = dict[str, Any]


class DatasetSpec(_Frozen):
    """The whole spec file."""

    name: str = "dataset"
    workdir: str | None = None  # `oiforge run`'s working folder (default ./<spec file stem>)
    select: SelectSection
    download: DownloadSection = DownloadSection()
    build: BuildSection = BuildSection()
    train: OpenSection = Field(default_factory=dict)
    evaluate: EvaluateSpec = EvaluateSpec()
    export: ExportSpec = ExportSpec()
    book: OpenSection | None = None
    present: PresentSpec | None = None
    endpoints: EndpointsSpec = EndpointsSpec()

    @model_validator(mode="before")
    @classmethod
    def _flat_select(cls, data: Any) -> Any:
        """Allow select fields at the top level (``classes: [...]``) for short specs."""
        if isinstance(data, dict) and "select" not in data:
            select_keys = set(SelectSection.model_fields)
            sel = {k: v for k, v in data.items() if k in select_keys}
            rest = {k: v for k, v in data.items() if k not in select_keys}
            return {**rest, "select": sel}
        return data

    def identity(self) -> dict[str, Any]:
        """What the dataset is: the name and the select, download and build fields of
        :class:`SelectSpec`, :class:`DownloadSpec` and :class:`BuildSpec` (JSON-ready, in
        their canonical form: see ``_Frozen.ADDED_LATER``)."""
        return {
            "name": self.name,
            "select": _fields_of(SelectSpec, self.select),
            "download": _fields_of(DownloadSpec, self.download),
            "build": _fields_of(BuildSpec, self.build),
        }

    def build_spec(self) -> BuildSpec:
        """The ``build:`` section as the :class:`BuildSpec` a build (and its lock) records."""
        return BuildSpec.model_validate(_fields_of(BuildSpec, self.build))

    def spec_hash(self) -> str:
        """SHA-256 (first 16 hex) of the canonical JSON of :meth:`identity`."""
        canon = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]


def _fields_of(model: type[BaseModel], section: _Frozen) -> dict[str, Any]:
    """The canonical form of ``section`` (keys added later left out at their defaults)
    restricted to the fields of ``model``."""
    return {k: v for k, v in section.canonical().items() if k in model.model_fields}


def load_spec(path: str | Path) -> DatasetSpec:
    """Read and validate a spec YAML; errors name the file and the field."""
    import yaml  # here, not at the top: selecting from Python needs no YAML (~35 ms of import)

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SpecError(f"spec file not found: {p}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{p}: a spec is a mapping with at least `classes:`")
    return parse_spec(data, source=str(p))


def parse_spec(data: dict[str, Any], source: str = "spec") -> DatasetSpec:
    """Validate a spec mapping; an unknown key's error lists the valid keys of its section."""
    try:
        return DatasetSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source}: {'; '.join(_problem(e) for e in exc.errors())}") from exc


def _problem(error: Any) -> str:
    loc = tuple(error["loc"])
    where = _key_name(loc) or "(top)"
    if error["type"] == "extra_forbidden":
        return _unknown_key(where, str(loc[-1]), _model_at(loc[:-1]), top=len(loc) == 1)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{where}: required"
    given = error.get("input")
    return f"{where}: {message}" + ("" if isinstance(given, dict) else f" (got {_shown(given)})")


def _unknown_key(where: str, key: str, parent: type[BaseModel] | None, top: bool) -> str:
    valid = sorted(parent.model_fields) if parent else []
    if top:  # a short spec may put select's keys at the top level
        valid += sorted(set(SelectSection.model_fields) - set(valid))
    return unknown_key_message(where, key, valid)


def unknown_key_message(where: str, key: str, valid: list[str]) -> str:
    """``unknown key build.sise; did you mean size? (valid keys here: ...)``."""
    import difflib

    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    listed = f" (valid keys here: {', '.join(valid)})" if valid else ""
    return f"unknown key {where}{hint}{listed}"


def _key_name(loc: tuple[Any, ...]) -> str:
    """``('select', 'classes', 1, 'name')`` -> ``select.classes[1].name``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The spec model a location points into (``()`` is the whole spec)."""
    model: type[BaseModel] | None = DatasetSpec
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(str(part))
        model = _model_in(field.annotation) if field else None
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None`` or ``tuple[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _shown(value: Any) -> str:
    """A value as the YAML author wrote it (JSON), cut to a readable length."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
