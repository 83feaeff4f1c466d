"""Everything a deck is made of, gathered once: the artefacts, and the measurements.

A missing artefact is kept as a ``Missing`` value (the slides say what is missing and the
command that makes it); only a run folder that is not a run, or a malformed file, stops here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from oiforge.errors import StageError
from oiforge.present import facts
from oiforge.present.facts import (
    DatasetFacts,
    DownloadFacts,
    EvalFacts,
    Missing,
    RunFacts,
    SelectionFacts,
)
from oiforge.present.measure import (
    Capacity,
    EstimateFacts,
    LearningCurve,
    cached_estimate,
    learning_curve,
    serve_capacity,
)

T = TypeVar("T")
DEFAULT_BENCH = Path("bench/results/bench_serve.json")
TIMING_PHOTOS = 8


@dataclass(frozen=True)
class Options:
    """What ``oiforge present`` was asked for."""

    dataset: Path | None = None
    selection: Path | None = None
    store: Path | None = None
    spec: Path | None = None
    learning_curve: bool = True
    estimate: bool = True
    serve_bench: Path = DEFAULT_BENCH
    prices: Path | None = None
    usd_per_hour: float | None = None
    target: float = 0.9
    peak_rps: float = 10.0


@dataclass
class Inputs:
    """The facts and measurements the slides are built from."""

    run: RunFacts
    options: Options
    evaluation: EvalFacts | Missing
    dataset: DatasetFacts | Missing
    selection: SelectionFacts | Missing
    download: DownloadFacts | Missing
    curve: LearningCurve | Missing
    estimate: EstimateFacts | Missing
    capacity: Capacity | Missing
    prices: dict[str, Any]
    gpu_table: dict[str, Any]
    missing: list[Missing] = field(default_factory=list)
    assets: Path = Path("assets")  # where slides put their pictures (the deck's assets/)

    def src(self, path: Path | None, name: str = "") -> str:
        """How a slide names a source file: ``<folder>/<file>``."""
        if path is None:
            return name
        return f"{path.name}/{name}" if name else f"{path.parent.name}/{path.name}"

    @property
    def price(self) -> tuple[float, str]:
        """$/hour of the machine this run trained on, and where that price comes from."""
        if self.options.usd_per_hour is not None:
            return self.options.usd_per_hour, "--usd-per-hour"
        given = self.run.config.get("usd_per_hour")
        if isinstance(given, int | float):
            return float(given), "config.yaml usd_per_hour"
        machine = self.prices["this_machine"]
        return float(machine["usd_per_hour"]), f"{machine['name']}, price table"


def _then(value: T | Missing, fn: Callable[[T], Any]) -> Any:
    return value if isinstance(value, Missing) else fn(value)


def gather(
    run_dir: Path, options: Options, progress: Callable[[str], None] | None = None
) -> Inputs:
    say = progress or (lambda _text: None)
    say("reading the run's artefacts")
    run = facts.read_run(run_dir)
    evaluation = facts.read_evaluation(run.path)
    dataset = _then(facts.dataset_of(run, options.dataset), facts.read_dataset)
    selection = _selection(run.path, dataset, options)
    download = _download(dataset, selection, options)
    prices = facts.read_prices(options.prices)
    say("timing the predictor")
    cores = int(prices["replica"]["cores"])
    capacity = serve_capacity(run, _timing_photos(dataset), options.serve_bench, cores)
    curve = _curve(run, dataset, evaluation, options, say)
    estimate = _estimate(run, dataset, options, say)
    inputs = Inputs(
        run,
        options,
        evaluation,
        dataset,
        selection,
        download,
        curve,
        estimate,
        capacity,
        prices,
        facts.read_gpu_table(),
    )
    inputs.missing = [
        v
        for v in (evaluation, dataset, selection, download, curve, estimate, capacity)
        if isinstance(v, Missing)
    ]
    return inputs


def _selection(
    run: Path, dataset: DatasetFacts | Missing, options: Options
) -> SelectionFacts | Missing:
    if isinstance(dataset, Missing):
        return Missing("selection.parquet", "the dataset folder is missing", dataset.command)
    found = facts.find_selection(dataset, options.selection, run)
    if isinstance(found, Missing):
        return found
    if not found.is_file():
        raise StageError(f"no selection file {found}")
    return facts.find_spec(facts.read_selection(found), options.spec)


def _download(
    dataset: DatasetFacts | Missing, selection: SelectionFacts | Missing, options: Options
) -> DownloadFacts | Missing:
    if isinstance(dataset, Missing):
        return Missing("download journal", "the dataset folder is missing", dataset.command)
    sel_path = None if isinstance(selection, Missing) else selection.path
    store = facts.find_store(sel_path, dataset.path, options.store)
    if isinstance(store, Missing):
        return store
    ids = frozenset() if isinstance(selection, Missing) else selection.image_ids
    return facts.read_download(store, ids)


def _timing_photos(dataset: DatasetFacts | Missing) -> list[bytes]:
    if isinstance(dataset, Missing):
        return []
    rows = sorted((s for s in dataset.samples if s.split == "test"), key=lambda s: s.key)
    rows = rows or sorted(dataset.samples, key=lambda s: s.key)
    out = [facts.photo_bytes(dataset, s) for s in rows[:TIMING_PHOTOS]]
    return [b for b in out if b]


def _curve(
    run: RunFacts,
    dataset: DatasetFacts | Missing,
    evaluation: EvalFacts | Missing,
    options: Options,
    say: Callable[[str], None],
) -> LearningCurve | Missing:
    command = f"oiforge present {run.path}   (without --no-learning-curve)"
    for needed in (dataset, evaluation):
        if isinstance(needed, Missing):
            return Missing("learning curve", f"it needs the {needed.what}", needed.command)
    assert isinstance(dataset, DatasetFacts) and isinstance(evaluation, EvalFacts)
    curve = learning_curve(run, dataset, evaluation, measure=options.learning_curve, progress=say)
    if curve is None:
        return Missing("learning curve", "it was not measured (--no-learning-curve)", command)
    return curve


def _estimate(
    run: RunFacts, dataset: DatasetFacts | Missing, options: Options, say: Callable[[str], None]
) -> EstimateFacts | Missing:
    if isinstance(dataset, Missing):
        return Missing("training estimate", "it needs the dataset folder", dataset.command)
    say("estimating the next training's time and cost (oiforge estimate)")
    identity = str(dataset.lock.get("top_hash") or os.fspath(dataset.path))
    return cached_estimate(run, dataset.path, identity, measure=options.estimate)
