"""The learning curve: the run's recipe retrained on 25% and 50% of its training photos.

Each point trains with the run's own config.yaml on a seeded, stratified subset of the
training split (whole source photos per class, at least one per class; val unchanged) and is
evaluated on the run's test split, through the public ``oiforge.train`` and
``oiforge.evaluate`` APIs. The 100% point is the run's own metrics.json. Points are cached in
``RUN/present/learning_curve.json`` (keyed by config, dataset and fractions) as they finish,
so a rerun reads them, and a killed measurement resumes at the next fraction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from oiforge.atomic import write_bytes_atomic, write_text_atomic
from oiforge.errors import MalformedFileError, OiforgeError, StageError
from oiforge.present.facts import (
    DatasetFacts,
    EvalFacts,
    RunFacts,
    SampleRow,
    photo_bytes,
    read_mapping,
    sha256_of,
)
from oiforge.present.figures import PowerFit, class_scores, headline, power_fit

log = logging.getLogger(__name__)

FRACTIONS = (0.25, 0.5)
CACHE_VERSION = 1
WORK_DIR = "present"
CURVE_FILE = "learning_curve.json"


@dataclass(frozen=True)
class CurvePoint:
    fraction: float
    train_images: int
    score: float  # accuracy, or mAP for multilabel
    test_samples: int
    per_class: dict[str, tuple[int, float]]  # class -> (train images, recall or AP)
    seconds: float  # what training + evaluating this point cost (0: the run itself)


@dataclass(frozen=True)
class LearningCurve:
    metric: str
    points: tuple[CurvePoint, ...]
    measured_s: float  # spent now (0 when every point came from the cache)
    cost_s: float  # what all points cost when they were measured


def cache_key(run: RunFacts, dataset: DatasetFacts, fractions: Sequence[float]) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{sorted(fractions)}|".encode())
    digest.update((run.path / "config.yaml").read_bytes())
    digest.update(
        str(dataset.lock.get("top_hash") or sha256_of(dataset.path / "manifest.parquet")).encode()
    )
    return digest.hexdigest()[:24]


def full_point(dataset: DatasetFacts, evaluation: EvalFacts) -> CurvePoint:
    """The run itself: all its training photos, its own metrics.json."""
    head = headline(evaluation.metrics)
    per = {
        c.name: (dataset.count("train", c.name), c.score) for c in class_scores(evaluation.metrics)
    }
    return CurvePoint(1.0, dataset.count("train"), head.value, head.samples, per, 0.0)


def learning_curve(
    run: RunFacts,
    dataset: DatasetFacts,
    evaluation: EvalFacts,
    *,
    measure: bool = True,
    fractions: Sequence[float] = FRACTIONS,
    progress: Callable[[str], None] | None = None,
) -> LearningCurve | None:
    """The curve from the cache, measuring what is missing when ``measure``; None if nothing."""
    key = cache_key(run, dataset, fractions)
    cache = run.path / WORK_DIR / CURVE_FILE
    done = _read_cache(cache, key)
    spent = 0.0
    for fraction in fractions:
        if fraction in done or not measure:
            continue
        if progress:
            progress(f"learning curve: training on {fraction:.0%} of the training photos")
        start = time.perf_counter()
        done[fraction] = _measure(run, dataset, fraction)
        spent += time.perf_counter() - start
        _write_cache(cache, key, done)
    if not done:
        return None
    points = sorted([*done.values(), full_point(dataset, evaluation)], key=lambda p: p.fraction)
    metric = headline(evaluation.metrics).name
    return LearningCurve(metric, tuple(points), spent, sum(p.seconds for p in points))


def _read_cache(path: Path, key: str) -> dict[float, CurvePoint]:
    if not path.is_file():
        return {}
    data = read_mapping(path)
    if data.get("key") != key:
        log.info("learning curve cache %s is for another config or dataset: remeasuring", path)
        return {}
    try:
        points = [
            CurvePoint(**{**p, "per_class": {k: tuple(v) for k, v in p["per_class"].items()}})
            for p in data["points"]
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedFileError(str(path), f"bad learning-curve point ({exc})") from exc
    return {p.fraction: p for p in points}


def _write_cache(path: Path, key: str, done: dict[float, CurvePoint]) -> None:
    points = [asdict(done[f]) for f in sorted(done)]
    write_text_atomic(path, json.dumps({"key": key, "points": points}, indent=2) + "\n")


def pick_subset(rows: Sequence[SampleRow], fraction: float, seed: int) -> list[SampleRow]:
    """Whole source photos per class, seeded: ``round(fraction * photos)``, at least one."""
    by_class: dict[str, dict[str, list[SampleRow]]] = {}
    for row in rows:
        by_class.setdefault(row.class_name, {}).setdefault(row.image_id, []).append(row)
    rng = random.Random(seed)
    chosen: list[SampleRow] = []
    for name in sorted(by_class):
        photos = sorted(by_class[name])
        rng.shuffle(photos)
        for image_id in photos[: max(1, round(fraction * len(photos)))]:
            chosen += by_class[name][image_id]
    return chosen


def _measure(run: RunFacts, dataset: DatasetFacts, fraction: float) -> CurvePoint:
    from oiforge.evaluate import evaluate
    from oiforge.train import build_config, train

    work = run.path / WORK_DIR / f"curve-{round(fraction * 100)}"
    shutil.rmtree(work, ignore_errors=True)  # a point killed half-way starts again
    train_rows = [s for s in dataset.samples if s.split == "train"]
    chosen = pick_subset(train_rows, fraction, int(run.config.get("seed") or 0))
    val_rows = [s for s in dataset.samples if s.split == "val"]
    _write_subset(dataset, [*chosen, *val_rows], work / "data")
    options: dict[str, Any] = {
        **run.config,
        "dataset": str(work / "data"),
        "out": str(work / "run"),
    }
    options["world_size"] = 1
    start = time.perf_counter()
    try:
        train(build_config(**options))
        evaluate(work / "run", dataset.path, workers=int(options.get("workers") or 0))
    except OiforgeError as exc:
        raise StageError(f"learning curve at {fraction:.0%}: {exc}") from exc
    seconds = time.perf_counter() - start
    metrics = read_mapping(work / "run" / "metrics.json")
    for weights in (work / "run").glob("*.safetensors"):
        weights.unlink()  # only the numbers are kept; the weights are 10s of MB a point
    shutil.rmtree(work / "data", ignore_errors=True)
    per_train = {n: sum(1 for s in chosen if s.class_name == n) for n in dataset.classes}
    per = {c.name: (per_train.get(c.name, 0), c.score) for c in class_scores(metrics)}
    head = headline(metrics)
    return CurvePoint(fraction, len(chosen), head.value, head.samples, per, round(seconds, 3))


def _write_subset(dataset: DatasetFacts, rows: Sequence[SampleRow], root: Path) -> None:
    """Class folders of the chosen samples: links to the dataset's files, or the bytes of
    their WebDataset members; classes.json copied so class indexes stay the same."""
    for row in rows:
        folder = row.class_folder or row.class_name
        target = root / row.split / folder / f"{row.key or row.image_id}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        source = dataset.path / row.sample_path if row.sample_path else None
        if source is not None and source.is_file():
            target.symlink_to(source.resolve())
            continue
        data = photo_bytes(dataset, row)
        if data is None:
            raise StageError(f"learning curve: cannot read sample {row.key} of {dataset.path}")
        write_bytes_atomic(target, data)
    if (dataset.path / "classes.json").is_file():
        shutil.copyfile(dataset.path / "classes.json", root / "classes.json")


def overall_fit(curve: LearningCurve) -> PowerFit | None:
    """The power law through the headline metric's points (errors floored at half a test
    mistake)."""
    floor = 0.5 / max(1, max(p.test_samples for p in curve.points))
    return power_fit([(p.train_images, 1 - p.score) for p in curve.points], floor)
