"""A spec file resolved for one working folder: where every file goes, and each stage's own
config object built from its section.

The ``train:`` section maps onto :class:`~oiforge.train.TrainConfig` field by field (so a new
training option needs no change here), and ``book:`` onto a book settings file's keys; both
are checked when the spec is loaded, before any stage runs. Relative paths in the spec resolve
against the spec file's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from oiforge.endpoints import Endpoints
from oiforge.errors import InvalidInputError, SpecError
from oiforge.spec import DatasetSpec, load_spec, unknown_key_message

if TYPE_CHECKING:
    from oiforge.book import PlanRequest
    from oiforge.download import DownloadConfig
    from oiforge.train import TrainConfig

#: TrainConfig fields the runner or the dataset sets (the folders, the class count and task,
#: DDP's world size).
TRAIN_DECIDED: Final = frozenset({"dataset", "out", "num_classes", "world_size", "task"})
#: Keys of ``train:`` that are not TrainConfig fields: DDP on this machine (``launch``).
TRAIN_LAUNCH: Final = ("gpus", "procs")
#: The book section's key that is no book setting: where the book's photos are fetched from.
BOOK_SOURCES: Final = "sources"
DEFAULT_BOOK_SOURCES: Final = ("original", "resized", "thumbnail")


@dataclass(frozen=True)
class Settings:
    """The spec, where it came from, and the working folder it runs in."""

    spec: DatasetSpec
    spec_path: Path
    workdir: Path

    def path(self, relative: str) -> Path:
        """A path inside the working folder."""
        return self.workdir / relative

    def beside_spec(self, value: str | None) -> Path | None:
        """A path the spec names, relative to the spec file's folder."""
        return None if value is None else self.spec_path.parent / Path(value).expanduser()

    @property
    def endpoints(self) -> Endpoints:
        ep = self.spec.endpoints
        if ep.mirror:
            return Endpoints.for_mirror(ep.mirror)
        return Endpoints.from_env(
            metadata_base=ep.metadata_base, images_base=ep.images_base, flickr_base=ep.flickr_base
        )


def load_settings(spec_path: Path, out: Path | None = None) -> Settings:
    """Load and check the whole spec (``train:`` and ``book:`` too); pick the working folder:
    ``out``, else the spec's ``workdir:`` (relative to the spec file), else ``./<spec stem>``."""
    spec = load_spec(spec_path)
    if out is not None:
        workdir = out
    elif spec.workdir:
        workdir = spec_path.parent / Path(spec.workdir).expanduser()
    else:
        workdir = Path(spec_path.stem)
    settings = Settings(spec, spec_path, workdir.resolve())
    train_config(settings)  # raise on a bad train: key now, not after the download
    train_launch(settings)
    if spec.book is not None:
        book_request(settings)
    return settings


def train_config(settings: Settings) -> TrainConfig:
    """The ``train:`` section as a TrainConfig for the working folder's dataset and run."""
    from pydantic import ValidationError

    from oiforge.train import TrainConfig

    valid = sorted({*TrainConfig.model_fields, *TRAIN_LAUNCH} - TRAIN_DECIDED)
    _check_keys(settings, "train", settings.spec.train, valid)
    section = {k: v for k, v in settings.spec.train.items() if k not in TRAIN_LAUNCH}
    values = {**section, "dataset": str(settings.path("dataset")), "out": str(settings.path("run"))}
    try:
        config = TrainConfig.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpecError(f"{settings.spec_path}: train.{where}: {first['msg']}") from exc
    if config.budget_usd is not None and config.usd_per_hour is None:
        raise SpecError(f"{settings.spec_path}: train.budget_usd needs train.usd_per_hour")
    return config


def train_launch(settings: Settings) -> tuple[int, int]:
    """``train.gpus`` and ``train.procs`` (0 and 0: one process)."""
    values = []
    for key in TRAIN_LAUNCH:
        value = settings.spec.train.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise SpecError(f"{settings.spec_path}: train.{key}: a whole number >= 0")
        values.append(value)
    return values[0], values[1]


def book_request(settings: Settings) -> PlanRequest:
    """The ``book:`` section as the book's plan request (checked like a settings file)."""
    from oiforge.book import build_request, read_settings

    section = {k: v for k, v in (settings.spec.book or {}).items() if k != BOOK_SOURCES}
    source = f"{settings.spec_path}: book"
    data = read_settings(section, source, settings.spec_path.parent)
    book_sources(settings)
    return build_request(data, {})


def book_sources(settings: Settings) -> tuple[Any, ...]:
    """Where the book's photos are fetched from, in order (``book.sources``)."""
    from oiforge.download import SOURCES

    raw = (settings.spec.book or {}).get(BOOK_SOURCES, DEFAULT_BOOK_SOURCES)
    items = raw.split(",") if isinstance(raw, str) else raw
    sources = tuple(str(s).strip() for s in items if str(s).strip())
    if not sources or any(s not in SOURCES for s in sources):
        raise SpecError(f"{settings.spec_path}: book.sources: names from {', '.join(SOURCES)}")
    return sources


def download_config(settings: Settings) -> DownloadConfig:
    """The ``download:`` section as the download stage's config."""
    from dataclasses import fields

    from oiforge.download import DownloadConfig

    section = settings.spec.download.model_dump()
    names = {f.name for f in fields(DownloadConfig)}
    try:
        return DownloadConfig(**{k: v for k, v in section.items() if k in names})
    except InvalidInputError as exc:
        raise SpecError(f"{settings.spec_path}: download: {exc}") from exc


def _check_keys(settings: Settings, section: str, given: dict[str, Any], valid: list[str]) -> None:
    for key in given:
        if key not in valid:
            where = f"{section}.{key}"
            raise SpecError(f"{settings.spec_path}: {unknown_key_message(where, key, valid)}")
