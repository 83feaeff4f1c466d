"""The stages ``oiforge run`` drives, in order: what each reads, decides by and writes.

Each stage is its settings (the spec keys that change what it makes: a change reruns it;
keys that only change how fast, like ``workers`` or ``connections``, are left out), its
inputs (files whose content it depends on: an earlier stage's output, or a file the spec
names), its outputs, and the function that runs it (``oiforge.pipeline.steps``). The working
folder holds::

    selection.parquet  store/  dataset/  run/  book/  deck/  oiforge-run.json
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from oiforge.pipeline import steps
from oiforge.pipeline.observer import Observer
from oiforge.pipeline.settings import Settings, train_config, train_launch
from oiforge.pipeline.steps import BOOK, DATASET, DECK, RUN, SELECTION, STORE

#: ``download:`` keys that change how fast it runs, not what it stores.
DOWNLOAD_SPEED: Final = set(
    {"connections", "per_host", "rate_per_host", "total_timeout_s", "connect_timeout_s",
     "read_timeout_s", "retries", "workers", "processes", "backend", "ray_address", "shards"}
)  # fmt: skip
#: ``build:`` keys that change how fast it runs, or name input files (digested as inputs).
BUILD_NOT_SETTINGS: Final = set(
    {"workers", "backend", "ray_address", "shards", "exclude_list", "review"}
)


@dataclass(frozen=True)
class Output:
    """A file or folder a stage writes (relative to the working folder), and what it is."""

    path: str
    what: str


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline (see the module docstring)."""

    name: str
    settings: Callable[[Settings], dict[str, Any]]
    inputs: Callable[[Settings], dict[str, Path]]
    outputs: tuple[Output, ...]
    run: Callable[[Settings, Observer, bool], str]  # (settings, observer, resume) -> summary
    section: str | None = None  # a spec section it needs to run at all (book, present)
    pending: Callable[[Settings], str | None] | None = None  # work left though up to date


def _select_settings(s: Settings) -> dict[str, Any]:
    section = s.spec.select.model_dump(mode="json", exclude={"review", "catalog", "no_fetch"})
    return _qualified("select", section)


def _select_inputs(s: Settings) -> dict[str, Path]:
    return _named(("select.review", s.beside_spec(s.spec.select.review)))


def _download_settings(s: Settings) -> dict[str, Any]:
    return _qualified("download", s.spec.download.model_dump(mode="json", exclude=DOWNLOAD_SPEED))


def _build_settings(s: Settings) -> dict[str, Any]:
    section = s.spec.build.model_dump(mode="json", exclude=BUILD_NOT_SETTINGS)
    return {
        "name": s.spec.name,
        "select.version": s.spec.select.version,
        **_qualified("build", section),
    }


def _build_inputs(s: Settings) -> dict[str, Path]:
    sec = s.spec.build
    return {
        SELECTION: s.path(SELECTION),
        STORE: s.path(STORE),
        **_named(
            ("build.exclude_list", s.beside_spec(sec.exclude_list)),
            ("build.review", s.beside_spec(sec.review)),
        ),
    }


def _train_settings(s: Settings) -> dict[str, Any]:
    gpus, procs = train_launch(s)
    return _qualified("train", {**train_config(s).training_fields(), "gpus": gpus, "procs": procs})


def _evaluate_settings(s: Settings) -> dict[str, Any]:
    sec = s.spec.evaluate
    precision = sec.target_precision  # only when set: older working folders keep their state
    extra = {} if precision is None else {"evaluate.target_precision": precision}
    return {"evaluate.worst": sec.worst, "evaluate.tta": sec.tta, **extra}


def _evaluate_inputs(s: Settings) -> dict[str, Path]:
    other = s.beside_spec(s.spec.evaluate.dataset)
    data = {"evaluate.dataset": other} if other is not None else {DATASET: s.path(DATASET)}
    return {**_run_files(s, "best.safetensors", "config.yaml"), **data}


def _book_settings(s: Settings) -> dict[str, Any]:
    return _qualified("book", dict(s.spec.book or {}))


def _book_inputs(s: Settings) -> dict[str, Path]:
    book = s.spec.book or {}
    custom = book.get("custom") if isinstance(book.get("custom"), dict) else {}
    folders = [(f"book.custom.{k}", s.beside_spec(str(v))) for k, v in (custom or {}).items()]
    overrides = book.get("overrides")
    return _named(("book.overrides", s.beside_spec(overrides) if overrides else None), *folders)


def _present_settings(s: Settings) -> dict[str, Any]:
    present = s.spec.present
    section = present.model_dump(mode="json", exclude={"chromium"}) if present else {}
    return _qualified("present", section)


def _present_inputs(s: Settings) -> dict[str, Path]:
    files = _run_files(s, "best.safetensors", "metrics.json", "model.onnx")
    present = s.spec.present
    extra = _named(("present.prices", s.beside_spec(present.prices if present else None)))
    return {SELECTION: s.path(SELECTION), DATASET: s.path(DATASET), **files, **extra}


def _run_files(s: Settings, *names: str) -> dict[str, Path]:
    return {f"{RUN}/{n}": s.path(f"{RUN}/{n}") for n in names}


def _qualified(section: str, values: dict[str, Any]) -> dict[str, Any]:
    """Settings keyed as the spec names them (``build.size``), so a change says which key."""
    return {f"{section}.{k}": v for k, v in values.items()}


def _named(*pairs: tuple[str, Path | None]) -> dict[str, Path]:
    return {name: path for name, path in pairs if path is not None}


STAGES: Final = (
    Stage(
        "select", _select_settings, _select_inputs,
        (Output(SELECTION, "the selected images and labels"),), steps.run_select,
    ),
    Stage(
        "download", _download_settings, lambda s: {SELECTION: s.path(SELECTION)},
        (Output(STORE, "downloaded images, journal.sqlite, stats.json"),), steps.run_download,
        pending=steps.transient_failures,
    ),
    Stage(
        "build", _build_settings, _build_inputs,
        (Output(DATASET, "the dataset: splits, manifest, DATASET.md, oiforge.lock"),),
        steps.run_build,
    ),
    Stage(
        "train", _train_settings, lambda s: {DATASET: s.path(DATASET)},
        (Output(f"{RUN}/best.safetensors", "trained weights (config.yaml, metrics.csv beside)"),),
        steps.run_train,
    ),
    Stage(
        "evaluate", _evaluate_settings, _evaluate_inputs,
        (Output(f"{RUN}/metrics.json", "test-split metrics"),
         Output(f"{RUN}/report.html", "the evaluation report")),
        steps.run_evaluate,
    ),
    Stage(
        "export", lambda s: {"export.tta": s.spec.export.tta},
        lambda s: _run_files(s, "best.safetensors", "config.yaml",
                                                 "metrics.csv"),
        (Output(f"{RUN}/model.onnx", "the ONNX model (labels.json, MODEL.md beside)"),),
        steps.run_export,
    ),
    Stage(
        "book", _book_settings, _book_inputs,
        (Output(f"{BOOK}/interior.pdf", "the picture book (attribution.json beside)"),
         Output(f"{BOOK}/cover.pdf", "its cover")),
        steps.run_book, section="book",
    ),
    Stage(
        "present", _present_settings, _present_inputs,
        (Output(f"{DECK}/index.html", "the presentation (slides.md, assets/ beside)"),),
        steps.run_present, section="present",
    ),
)  # fmt: skip
STAGE_NAMES: Final = tuple(stage.name for stage in STAGES)
