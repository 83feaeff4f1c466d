"""``--mode auto``: try the cheap candidates first, then costlier ones while time remains,
and keep the one the validation split says is better, robustly.

The candidates, in order of cost (each a normal run in ``RUN/candidates/<name>/``):

1. ``probe``: a linear head on frozen features, L2 strength by grouped cross-validation;
2. ``mlp``: a one-hidden-layer head on the same cached features;
3. ``partial-1``, ``partial-2``: the last 1 or 2 blocks + head trained on cached activations
   of augmented views (the head starts from the linear probe);
4. ``finetune``: the whole network on images, for whatever time is left.

Every candidate gets the time left of ``--max-minutes`` (default :func:`default_minutes`),
counted from its start. One whose uninterruptible part (the forward passes that fill its
cache, about an epoch; :class:`Costs`, timed on a few images first) does not fit in the time
left is skipped and said so: no candidate starts that cannot finish. One stopped by the limit
keeps its best epoch; the overrun (the last step and validation) is recorded.

The pick walks the candidates in that order: a costlier one replaces the current
pick only if, on the same validation images, it gets more right by more than
:data:`SELECTION_Z` standard errors of the paired difference (wins minus losses, McNemar's
view); otherwise the simpler model stays (ties go to the simpler model). Multi-label, the
score is the validation mAP (Open Images': average precision over the verified labels of
each class, averaged over the classes), and its standard error comes from a paired bootstrap
of the validation photos. A dataset with fewer than :data:`MIN_PHOTOS_PER_CLASS` training
photos in a class trains the probe alone: nothing could tell the candidates apart on it.
Deterministic with a seed, as long as no candidate is stopped by the time limit.

Then the ensemble (``--ensemble``, on by default): the average of every finished candidate's
class probabilities. With a few hundred validation photos the candidates are usually within
noise of each other (on elpv's 100: 0.82-0.85 accuracy, log-loss 0.383-0.397, each pair a
handful of images apart), and averaging models that err differently removes part of each
one's error instead of betting on one. The ensemble is kept unless the walk's pick beats it
on the paired validation log-loss by more than :data:`SELECTION_Z` standard errors
(multi-label: the mAP, as above). The log-loss, a proper score where every validation image
counts, judges what averaging changes, the probabilities; the accuracy difference would rest
on the few images where the two disagree. The members that trained on the frozen ImageNet
trunk (probe, MLP, partial) share it in the saved model, which runs it once per image; full
fine-tuning runs its own network, so an ensemble with it costs about two forward passes.

The chosen candidate's ``best.safetensors``, ``metrics.csv`` and ``curves.png`` become the
run's; ``config.yaml`` records the pick (``chosen``, and the ``head``/``train_blocks`` that
rebuild the model; for the ensemble, ``members`` and ``trunk_blocks``, and its metrics and
curves are the walk's pick's); ``summary.json`` has every candidate's score and time, and
``curves_of``: the candidate whose metrics.csv and curves.png the run has.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save

from oiforge.atomic import write_bytes_atomic
from oiforge.contracts.run import LABELS_FILE
from oiforge.errors import InvalidInputError, OiforgeError, StageError
from oiforge.progress import CandidateEnd, Event, Finished, Notice
from oiforge.train.cache import probe_features_cached
from oiforge.train.config import DEFAULT_LR, ENSEMBLE, Member, TrainConfig
from oiforge.train.dataset import DatasetIndex, source_of
from oiforge.train.ddp import Dist
from oiforge.train.heads import choose_thresholds, log_loss_and_acc, mean_average_precision
from oiforge.train.images import dataset_notices, eval_transform, loader_over, resize_size
from oiforge.train.loop import train_one
from oiforge.train.models import (
    build_ensemble,
    pick_device,
    preprocessing_for,
    split_blocks,
    trunk_state,
)
from oiforge.train.rundir import (
    BEST_FILE,
    CANDIDATES_DIR,
    CONFIG_FILE,
    CURVES_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    build_model,
    load_trained,
    prepare_run_dir,
    read_json,
    set_thresholds,
    write_config,
    write_json,
    write_labels,
    write_weights,
)

#: A costlier candidate must win by more than this many standard errors of the paired
#: difference in correct validation images (one: a moderate guard against picking noise).
SELECTION_Z = 1.0
#: Below this many training photos in a class, auto trains the probe alone.
MIN_PHOTOS_PER_CLASS = 5
#: Budget of ``--mode auto`` when ``--max-minutes`` is not given: 10 minutes is what the
#: candidates need on 2 CPU cores for about 1,500 training images at 224 px (bench/); a GPU
#: gets 20, enough for several epochs of full fine-tuning on ten times as many images.
CPU_MINUTES = 10.0
GPU_MINUTES = 20.0
VAL_PROBS_FILE = "val_probs.safetensors"
#: Paired bootstrap resamples of the validation photos (multi-label: mAP's standard error).
BOOTSTRAP = 100
#: Safety factor on the time a stopped candidate still needs (:meth:`Costs.reserve_s`).
RESERVE_MARGIN = 1.5
#: Training images whose decoding and forward pass are timed to size the candidates' costs.
TIMED_IMAGES = 8


class NothingFinishedError(StageError):
    """No candidate of ``--mode auto`` produced a model within the time limit."""


@dataclass(frozen=True)
class Candidate:
    name: str
    changes: dict[str, Any] = field(default_factory=dict)


CANDIDATES = (
    Candidate("probe", {"mode": "probe", "head": "linear"}),
    Candidate("mlp", {"mode": "probe", "head": "mlp"}),
    Candidate("partial-1", {"mode": "partial", "head": "linear", "train_blocks": 1}),
    Candidate("partial-2", {"mode": "partial", "head": "linear", "train_blocks": 2}),
    Candidate("finetune", {"mode": "finetune", "head": "linear"}),
)


@dataclass(frozen=True)
class Costs:
    """Rough seconds of what a candidate cannot stop midway (its forward passes over images,
    caching features or activations), from the time one image takes to decode and go through
    the network, measured on a few training images on this machine. A candidate starts only
    when the time left covers that and about one epoch of training; the deadline stops the rest.
    """

    per_image_s: float
    train: int
    val: int

    @staticmethod
    def measure(config: TrainConfig, index: DatasetIndex) -> Costs:
        train, val = len(index.splits["train"]), len(index.splits["val"])
        samples = index.splits["train"][: 2 * TIMED_IMAGES]
        prep = preprocessing_for(config.model, config.image_size, config.crop_pct)
        size = resize_size(config.image_size, config.crop_pct)
        device = pick_device(config.device)
        model = build_model(config.replace(num_classes=len(index.classes)), pretrained=False)
        model = model.to(device).eval()
        batches = iter(loader_over(samples, eval_transform(prep), size, TIMED_IMAGES, workers=0))
        per_image = 0.0
        with torch.no_grad():
            while True:  # the first batch warms the network up; the last one is timed
                started = time.monotonic()
                batch = next(batches, None)
                if batch is None:
                    break
                if len(batch[1]):
                    model(batch[0].to(device)).cpu()
                    per_image = (time.monotonic() - started) / len(batch[1])
        return Costs(per_image, train, val)

    def from_probe(self, seconds: float) -> Costs:
        """The probe's own run (features of every training and validation image computed in
        batches, decoded in parallel) is the better measure when it computed them: a few
        images timed a batch at a time overstate the cost, most on a busy machine."""
        return Costs(seconds / max(self.train + self.val, 1), self.train, self.val)

    def reserve_s(self, config: TrainConfig) -> float:
        """What a candidate does after its deadline stops it: the step under way and two
        passes over the validation images (the epoch's, and the best model's probabilities),
        with half again for starting their loaders (on elpv, 2 cores: 12.6 s where the bare
        passes come to 9.2 s)."""
        return RESERVE_MARGIN * (3 * config.batch_size + 2 * self.val) * self.per_image_s

    def needed_s(self, cand: Candidate, config: TrainConfig) -> float:
        """The probe is auto's fallback and always runs; the MLP head reuses its features."""
        n, v, f = self.train, self.val, self.per_image_s
        mode = cand.changes["mode"]
        if mode == "probe":
            return 0.0
        if mode == "partial":  # the views and val cached, then about an epoch on the tail
            return (config.views * n + v + n) * f
        # finetune: the head epochs and one full epoch (a backward costs about two forwards)
        return (1 + config.head_epochs) * (3 * n + v) * f


def candidate_config(config: TrainConfig) -> TrainConfig:
    """The config that trains ``config.chosen`` alone (a finished auto run's ``config.yaml``
    trained again reproduces its pick, in the time of that one candidate). An ensemble's is
    auto again over its members alone (:func:`plan` keeps only them)."""
    if config.chosen == ENSEMBLE:
        return config.replace(chosen="", trunk_blocks=0)
    found = [c for c in CANDIDATES if c.name == config.chosen]
    if not found:
        names = ", ".join(c.name for c in CANDIDATES)
        raise InvalidInputError(f"chosen: {config.chosen!r} is not a candidate of auto ({names})")
    changes = found[0].changes
    return config.replace(lr=config.lr or DEFAULT_LR[changes["mode"]], **changes)


def default_minutes() -> float:
    return GPU_MINUTES if torch.cuda.is_available() else CPU_MINUTES


@dataclass
class Result:
    """One candidate's line of the table, and its validation probabilities."""

    row: dict[str, Any]
    probs: torch.Tensor | None = None
    labels: torch.Tensor | None = None

    @property
    def finished(self) -> bool:
        return self.probs is not None


def smallest_class_photos(index: DatasetIndex) -> int:
    """The fewest training photos of a class (multi-label: verified to show it)."""
    photos: dict[int, set[str]] = {}
    for s in index.splits["train"]:
        for label in s.positives if s.multilabel else (s.label,):
            photos.setdefault(label, set()).add(source_of(s))
    return min(len(p) for p in photos.values())


def plan(index: DatasetIndex, config: TrainConfig) -> tuple[tuple[Candidate, ...], str]:
    """The candidates to try (an ensemble's config retrained: its members), and a notice when
    the dataset is too small for all of them."""
    fewest = smallest_class_photos(index)
    if fewest < MIN_PHOTOS_PER_CLASS:
        return CANDIDATES[:1], (
            f"auto: the smallest class has {fewest} training photo(s), fewer than "
            f"{MIN_PHOTOS_PER_CLASS}: too few to compare candidates on; training the linear "
            "probe alone"
        )
    names = {m.name for m in config.members}
    return tuple(c for c in CANDIDATES if not names or c.name in names), ""


def run_auto(config: TrainConfig, index: DatasetIndex, resume: bool) -> Iterator[Event]:
    """Train the candidates into ``RUN/candidates/``, pick one, make it the run's model."""
    run = Path(config.out)
    prepare_run_dir(config, resume)
    write_config(run, config)
    preprocessing = preprocessing_for(config.model, config.image_size, config.crop_pct)
    write_labels(run, index.classes, preprocessing, config.task)
    yield from dataset_notices(index)
    candidates, note = plan(index, config)
    if note:
        yield Notice("warning", note)
    started = time.monotonic()
    budget_s = float(config.max_minutes or CPU_MINUTES) * 60
    results = yield from _candidates(config, index, candidates, started + budget_s, resume)
    skipped = [r.row["name"] for r in results if r.row["status"].startswith("skipped: no time")]
    if skipped:
        yield Notice(
            "warning",
            f"--max-minutes {config.max_minutes:g} ran out: not tried: {', '.join(skipped)}",
        )
    single = pick(results)
    chosen = single
    ensemble = ensemble_of(results) if config.ensemble else None
    if ensemble is not None:
        results.append(ensemble)
        if not beats_ensemble(single, ensemble):
            chosen = ensemble
        yield Notice("info", _ensemble_text(single, ensemble, chosen is ensemble))
    took_s = time.monotonic() - started
    yield Finished(str(run), _adopt(config, (chosen, single), results, (took_s, budget_s)))


def _candidates(
    config: TrainConfig,
    index: DatasetIndex,
    candidates: tuple[Candidate, ...],
    until: float,
    resume: bool,
) -> Generator[Event, None, list[Result]]:
    """Each candidate in turn while time is left (``until``: a ``time.monotonic()``)."""
    costs, probe_cached = Costs.measure(config, index), probe_features_cached(config, index)
    results = []
    for number, cand in enumerate(candidates, 1):
        on_images = cand.changes["mode"] == "finetune"  # the others validate cached features
        left_s = until - time.monotonic() - (costs.reserve_s(config) if on_images else 0.0)
        time_s = (left_s, costs.needed_s(cand, config))
        result = yield from _try(config, index, cand, time_s, resume)
        results.append(result)
        yield CandidateEnd(number, len(candidates), result.row)
        if cand.name == "probe" and result.finished and not probe_cached:
            costs = costs.from_probe(float(result.row["seconds"]))
    return results


def _try(
    config: TrainConfig,
    index: DatasetIndex,
    cand: Candidate,
    time_s: tuple[float, float],
    resume: bool,
) -> Generator[Event, None, Result]:
    """Train one candidate (or read it back when a resumed run finished it before);
    ``time_s``: the seconds left of the budget, and the seconds it needs at the least."""
    left_s, needed_s = time_s
    row: dict[str, Any] = {"name": cand.name, **cand.changes}
    out = Path(config.out) / CANDIDATES_DIR / cand.name
    if resume and (out / VAL_PROBS_FILE).is_file() and (out / SUMMARY_FILE).is_file():
        summary = read_json(out / SUMMARY_FILE)
        saved = load_file(str(out / VAL_PROBS_FILE))
        return _result(row, summary, saved["probs"], saved["labels"])
    if left_s <= 0:
        return Result({**row, "status": "skipped: no time left"})
    if needed_s > left_s:
        why = f"needs ~{needed_s:.0f} s, {left_s:.0f} s left"
        return Result({**row, "status": f"skipped: no time left ({why})"})
    lr = config.lr or DEFAULT_LR[cand.changes["mode"]]
    cfg = config.replace(out=str(out), max_minutes=left_s / 60, chosen="", lr=lr, **cand.changes)
    started = time.monotonic()
    try:
        has_checkpoint = prepare_run_dir(cfg, resume and (out / CONFIG_FILE).is_file())
        outcome = yield from train_one(cfg, index, has_checkpoint, Dist(), val_probs=True)
    except OiforgeError as exc:
        yield Notice("warning", f"auto: candidate {cand.name} failed: {exc}")
        return Result({**row, "status": f"failed: {exc}"})
    assert outcome is not None  # one process: rank 0
    if not (out / BEST_FILE).is_file():
        return Result({**row, "status": "no model: " + str(outcome.summary["stopped"])})
    blob = save({"probs": outcome.val_probs.contiguous(), "labels": outcome.val_labels})
    write_bytes_atomic(out / VAL_PROBS_FILE, blob)
    summary = {**outcome.summary, "wall_seconds": round(time.monotonic() - started, 3)}
    write_json(out / SUMMARY_FILE, summary)
    return _result(row, summary, outcome.val_probs, outcome.val_labels)


def _result(
    row: dict[str, Any], summary: dict[str, Any], probs: torch.Tensor, labels: torch.Tensor
) -> Result:
    acc, loss = _scores(probs, labels)
    if labels.dim() == 2:
        row["val_map"] = _rounded(mean_average_precision(probs.numpy(), labels.numpy()))
    row = {
        **row,
        "val_acc": acc,
        "val_loss": loss,
        "seconds": summary.get("wall_seconds", summary.get("train_seconds")),
        "epochs": summary.get("epochs_run"),
        "stopped": summary.get("stopped"),
        "status": "finished",
    }
    if "probe_C" in summary:
        row["C"] = summary["probe_C"]
    return Result(row, probs, labels)


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(value, 6)


def _scores(probs: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    if not len(labels):
        return float("nan"), float("nan")
    if labels.dim() == 2:  # the verified labels' log-loss and accuracy at p = 0.5
        logits = torch.logit(probs.double().clamp(1e-12, 1 - 1e-12))
        loss, acc = log_loss_and_acc(logits, labels.double())
        return round(acc, 6), round(loss, 6)
    acc = float((probs.argmax(1) == labels).float().mean())
    return round(acc, 6), round(float(_log_losses(probs, labels).mean()), 6)


def _log_losses(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each image's log-loss: minus the log of the probability given to its class."""
    return -probs.double()[torch.arange(len(labels)), labels].clamp_min(1e-12).log()


def beats(new: Result, old: Result) -> bool:
    """Whether ``new`` gets more validation images right than ``old`` by more than
    ``SELECTION_Z`` standard errors of the paired difference."""
    assert new.probs is not None and old.probs is not None and new.labels is not None
    if new.probs.shape != old.probs.shape or not len(new.labels):
        return bool(new.row["val_acc"] > old.row["val_acc"])
    if new.labels.dim() == 2:
        return beats_map(new.probs.numpy(), old.probs.numpy(), new.labels.numpy())
    right_new = new.probs.argmax(1) == new.labels
    right_old = old.probs.argmax(1) == new.labels
    wins = int((right_new & ~right_old).sum())
    losses = int((~right_new & right_old).sum())
    diff, n = wins - losses, len(new.labels)
    se = math.sqrt(max(wins + losses - diff * diff / n, 0.0))
    return diff > 0 and diff > SELECTION_Z * se


def beats_map(new: np.ndarray, old: np.ndarray, targets: np.ndarray, seed: int = 0) -> bool:
    """Multi-label: whether ``new``'s validation mAP beats ``old``'s by more than
    ``SELECTION_Z`` standard errors of the difference, estimated by resampling the validation
    photos (the same resample for both: a paired bootstrap)."""
    diff = mean_average_precision(new, targets) - mean_average_precision(old, targets)
    if np.isnan(diff) or diff <= 0:
        return False
    rng, n = np.random.default_rng(seed), len(targets)
    diffs = []
    for _ in range(BOOTSTRAP):
        rows = rng.integers(0, n, n)
        diffs.append(
            mean_average_precision(new[rows], targets[rows])
            - mean_average_precision(old[rows], targets[rows])
        )
    se = float(np.nanstd(diffs, ddof=1))
    return bool(diff > SELECTION_Z * se)


def pick(results: list[Result]) -> Result:
    """The first finished candidate, replaced by each later one that :func:`beats` it."""
    finished = [r for r in results if r.finished]
    if not finished:
        reasons = "; ".join(f"{r.row['name']}: {r.row['status']}" for r in results)
        raise NothingFinishedError(
            f"no candidate finished ({reasons}): raise --max-minutes or name a --mode"
        )
    chosen = finished[0]
    for challenger in finished[1:]:
        if beats(challenger, chosen):
            chosen = challenger
    return chosen


def ensemble_of(results: list[Result]) -> Result | None:
    """The average of every finished candidate's validation probabilities (None with fewer
    than two, or when their validation sets differ)."""
    done = [r for r in results if r.finished]
    if len(done) < 2 or len({tuple(r.probs.shape) for r in done if r.probs is not None}) > 1:
        return None
    probs = torch.stack([r.probs.float() for r in done if r.probs is not None]).mean(0)
    labels = done[0].labels
    assert labels is not None
    acc, loss = _scores(probs, labels)
    row: dict[str, Any] = {"name": ENSEMBLE, "mode": ENSEMBLE}
    if labels.dim() == 2:
        row["val_map"] = _rounded(mean_average_precision(probs.numpy(), labels.numpy()))
    row |= {
        "val_acc": acc,
        "val_loss": loss,
        "seconds": round(sum(float(r.row.get("seconds") or 0) for r in done), 3),
        "epochs": None,
        "members": [r.row["name"] for r in done],
        "status": "finished",
    }
    return Result(row, probs, labels)


def _ensemble_text(single: Result, ensemble: Result, kept: bool) -> str:
    key = "val_map" if "val_map" in ensemble.row else "val_loss"
    what = "mAP" if key == "val_map" else "log-loss"
    mine, theirs = (f"{v:.4f}" if isinstance(v, float) else "n/a"
                    for v in (ensemble.row.get(key), single.row.get(key)))  # fmt: skip
    scores = f"validation {what} {mine} against {single.row['name']}'s {theirs}"
    names = ", ".join(ensemble.row["members"])
    if kept:
        return f"auto: kept the average of {names} ({scores})"
    return f"auto: kept {single.row['name']}: it beats the average of {names} ({scores})"


def beats_ensemble(single: Result, ensemble: Result) -> bool:
    """Whether ``single`` beats the ensemble by more than ``SELECTION_Z`` standard errors:
    of the paired difference in validation log-loss (single-label), or of the mAP
    (multi-label, :func:`beats_map`)."""
    assert single.probs is not None and ensemble.probs is not None and single.labels is not None
    labels = single.labels
    if labels.dim() == 2:
        return beats_map(single.probs.numpy(), ensemble.probs.numpy(), labels.numpy())
    gain = _log_losses(ensemble.probs, labels) - _log_losses(single.probs, labels)  # > 0: single
    mean = float(gain.mean())
    se = float(gain.std()) / math.sqrt(len(gain)) if len(gain) > 1 else 0.0
    return mean > 0 and mean > SELECTION_Z * se


def _adopt(
    config: TrainConfig,
    picked: tuple[Result, Result],
    results: list[Result],
    took: tuple[float, float],
) -> dict[str, Any]:
    """Make the chosen model the run's; write config.yaml and summary.json. ``picked``: the
    chosen result and the walk's single pick (whose metrics and curves an ensemble takes);
    ``took``: the seconds auto ran, and its budget."""
    chosen, single = picked
    run = Path(config.out)
    source = run / CANDIDATES_DIR / single.row["name"]
    for file in (BEST_FILE, METRICS_FILE, CURVES_FILE, LABELS_FILE):
        if (source / file).is_file():
            shutil.copyfile(source / file, run / f".{file}.tmp")
            (run / f".{file}.tmp").replace(run / file)
    if chosen is single:
        changes = {k: v for k, v in single.row.items() if k in ("head", "train_blocks")}
        write_config(run, config.replace(chosen=single.row["name"], **changes))
    else:
        write_config(run, _write_ensemble(config, chosen))
    for r in results:
        r.row["chosen"] = r is chosen
    summary = {
        **read_json(source / SUMMARY_FILE),
        "run_dir": str(run),
        "mode": "auto",
        "chosen": chosen.row["name"],
        "chosen_mode": chosen.row.get("mode"),
        "curves_of": single.row["name"],  # metrics.csv and curves.png are this candidate's
        "max_minutes": config.max_minutes,
        "auto_seconds": round(took[0], 3),
        "auto_overrun_seconds": round(max(took[0] - took[1], 0.0), 3),
        "candidates": [r.row for r in results],
        "selection": _selection_text(config),
    }
    if chosen is not single:
        summary |= {"best_val_acc": chosen.row["val_acc"], "best_val_loss": chosen.row["val_loss"]}
        summary["best_val_map"] = chosen.row.get("val_map", summary.get("best_val_map"))
    write_json(run / SUMMARY_FILE, summary)
    return summary


def _write_ensemble(config: TrainConfig, ensemble: Result) -> TrainConfig:
    """Write the ensemble's weights (and, multi-label, its thresholds) into the run; return
    the config that rebuilds it."""
    run = Path(config.out)
    names = ensemble.row["members"]
    models = [load_trained(run / CANDIDATES_DIR / name).model for name in names]
    changes = [next(c.changes for c in CANDIDATES if c.name == name) for name in names]
    trunk_blocks, shared = _shared_trunk(models, changes)
    members = tuple(
        Member(name=name, head=ch.get("head", "linear"), shared=sh)
        for name, ch, sh in zip(names, changes, shared, strict=True)
    )
    multilabel = config.task == "multilabel"
    write_weights(run / BEST_FILE, build_ensemble(models, shared, trunk_blocks, multilabel))
    if multilabel and ensemble.probs is not None and ensemble.labels is not None:
        thresholds = choose_thresholds(ensemble.probs.numpy(), ensemble.labels.numpy())[0]
        set_thresholds(run, thresholds)
    return config.replace(chosen=ENSEMBLE, members=members, trunk_blocks=trunk_blocks)


def _shared_trunk(
    models: list[torch.nn.Module], changes: list[dict[str, Any]]
) -> tuple[int, list[bool]]:
    """How many blocks the members trained on a frozen trunk (probe, MLP, partial) leave
    untouched, and which members share that trunk: those whose stem and first blocks equal
    the first such member's, weight for weight (full fine-tuning never does)."""
    frozen = [ch["mode"] in ("probe", "partial") for ch in changes]
    try:
        units = len(split_blocks(models[0]).units)
    except InvalidInputError:  # a network partial mode cannot cut: every member runs whole
        return 0, [False] * len(models)
    tails = [ch.get("train_blocks", 0) for ch in changes if ch["mode"] == "partial"]
    trained = max(tails, default=0)
    blocks = units - trained
    reference: list[torch.Tensor] | None = None
    shared = []
    for model, is_frozen in zip(models, frozen, strict=True):
        state = trunk_state(model, blocks) if is_frozen else []
        if is_frozen and reference is None:
            reference = state
        same = reference is not None and len(state) == len(reference)
        shared.append(is_frozen and same and all(map(torch.equal, state, reference or [])))
    return blocks, shared


def _selection_text(config: TrainConfig) -> str:
    score = "validation mAP" if config.task == "multilabel" else "paired validation accuracy"
    text = (
        f"{score}: a costlier candidate must win by > {SELECTION_Z:g} standard error(s) of the "
        "paired difference; ties go to the simpler model"
    )
    if config.ensemble:
        judge = "mAP" if config.task == "multilabel" else "paired validation log-loss"
        text += (
            f"; then the average of every finished candidate is kept unless that pick beats it "
            f"by > {SELECTION_Z:g} standard error(s) of the {judge}"
        )
    return text
