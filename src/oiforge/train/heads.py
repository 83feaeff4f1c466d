"""What a head is fitted to: the linear probe (logistic regression on cached features, fitted
to convergence, its regularisation chosen by cross-validation on the training images), and
the multi-label objective (masked losses, scores, average precision, thresholds).

Why not epochs of AdamW with early stopping on validation accuracy: on a small validation
split that picks a lucky epoch (a head stopped at epoch 1 with its loss still at log 2).
Here the loss is convex, so full-batch L-BFGS reaches its optimum; what remains to choose is
the L2 strength, and that is chosen on the training images alone:

1. features standardised (mean 0, std 1 per dimension; folded back into the weights at the
   end, so the saved head takes raw features as before);
2. ``C`` (inverse L2 strength, scikit-learn's convention: ``C * sum(loss) + |W|^2 / 2``) from
   :data:`C_GRID`, scored by stratified k-fold cross-validation where the crops of one photo
   stay in one fold (:func:`oiforge.train.dataset.source_of`);
3. the number of held-out images classified right decides (what the user cares about; each
   training image is held out once); among equals the held-out log-loss (calibration), and
   an exact tie goes to the smaller ``C``, the simpler model;
4. the final fit on all training features; validation only confirms (it is reported).

Deterministic: the folds are seeded, L-BFGS has no randomness.

Multi-label (targets ``(N, C)``: 1 verified present, 0 verified absent, -1 unknown): the probe
is one L2-penalised logistic regression per class, fitted jointly (the classes share no
weights, so the joint optimum is each class's own), each on the photos whose label for it a
person verified: an unknown label adds nothing to the loss. One ``C`` for all classes, chosen
by the mean average precision of the pooled held-out predictions (each training photo held
out once), then the held-out log-loss, then the smaller ``C``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional

from oiforge.contracts.run import DEFAULT_THRESHOLD
from oiforge.progress import EpochEnd, Event, PhaseStart, Step

#: Inverse L2 strengths tried (log-spaced, as scikit-learn's LogisticRegressionCV does).
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
#: Folds of the cross-validation (fewer when a class has fewer source photos).
FOLDS = 5
#: L-BFGS iterations per reported round (one row of metrics.csv).
ROUND_ITERS = 25
#: Most L-BFGS iterations of one cross-validation fit (warm-started from the previous C).
CV_ITERS = 50
#: The C used when there are too few photos to cross-validate.
FALLBACK_C = 1.0


@dataclass
class ProbeFit:
    """The fitted head and how it was chosen."""

    weight: torch.Tensor
    bias: torch.Tensor
    c: float
    folds: int
    cv: list[dict[str, float]] = field(default_factory=list)  # one row per C
    history: list[dict[str, float]] = field(default_factory=list)  # one row per round
    note: str = ""


@dataclass(frozen=True)
class Standardiser:
    mean: torch.Tensor
    std: torch.Tensor

    @staticmethod
    def fit(x: torch.Tensor) -> Standardiser:
        """A near-constant feature (a channel that barely fires) is scaled as if its spread
        were 1% of the typical one: blowing its noise up to unit size would give the folded
        weights huge values that amplify rounding (ONNX parity) and noise alike."""
        std = x.std(0, unbiased=False)
        return Standardiser(x.mean(0), std.clamp_min(max(1e-2 * float(std.mean()), 1e-8)))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def fold(self, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights on raw features equal to ``weight``/``bias`` on standardised ones."""
        w = weight / self.std
        return w, bias - w @ self.mean


def _penalised_loss(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor, c: float, cw: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(objective, data loss): weighted mean cross-entropy + |W|^2 / (2 C n); multi-label,
    the mean BCE over the n verified labels (``cw``: positive weights) + |W|^2 / (2 C n)."""
    if y.dim() == 2:
        known = y >= 0
        data = masked_loss(x @ w.T + b, y.clamp(0, 1), known, pos_weight=cw)
        return data + (w * w).sum() / (2 * c * known.sum().clamp(min=1)), data
    data = functional.cross_entropy(x @ w.T + b, y, weight=cw, reduction="sum") / cw[y].sum()
    return data + (w * w).sum() / (2 * c * len(y)), data


def _lbfgs(features: int, classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.optim.LBFGS]:
    """Zero-initialised weights (the optimum is unique: no seed needed) and their L-BFGS."""
    w = torch.zeros(classes, features, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=ROUND_ITERS,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-5,  # per-weight gradient: converged for any practical purpose
        tolerance_change=1e-9,
    )
    return w, b, opt


def _run(
    opt: torch.optim.LBFGS, closure_args: tuple[torch.Tensor, ...], c: float, max_iter: int
) -> int:
    """Run ``opt`` for up to ``max_iter`` iterations; returns the iterations taken."""
    x, y, w, b, cw = closure_args
    opt.param_groups[0]["max_iter"] = max_iter

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss, _ = _penalised_loss(x, y, w, b, c, cw)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    before = int(opt.state[w].get("n_iter", 0)) if w in opt.state else 0
    opt.step(closure)  # type: ignore[no-untyped-call]
    return int(opt.state[w].get("n_iter", 0)) - before


def log_loss_and_acc(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean log-loss and accuracy (multi-label: over the verified labels, at p = 0.5)."""
    if not len(y):
        return float("nan"), float("nan")
    if y.dim() == 2:
        known = y >= 0
        right, judged = hits(logits, y)
        loss = float(masked_loss(logits, y.clamp(0, 1), known))
        return loss, float(right) / max(int(judged), 1) if int(judged) else float("nan")
    loss = float(functional.cross_entropy(logits, y))
    return loss, float((logits.argmax(1) == y).float().mean())


def grouped_folds(
    labels: Sequence[int], groups: Sequence[str], seed: int, most: int = FOLDS
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold splits that keep each group (source photo) in one fold; k is at most
    the smallest class's number of groups; [] when that is below 2."""
    per_class: dict[int, set[str]] = {}
    for label, group in zip(labels, groups, strict=True):
        per_class.setdefault(label, set()).add(group)
    k = min(most, min(len(g) for g in per_class.values()))
    return _split(labels, groups, seed, k) if k >= 2 else []


def multilabel_folds(
    y: torch.Tensor, groups: Sequence[str], seed: int, most: int = FOLDS
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped k-fold splits of multi-label targets, stratified by each photo's rarest
    verified class; k is at most the fewest photos verified to show a class (at least 2, so a
    class with a single positive photo still lets the others be cross-validated; its one
    held-out prediction comes from a model that saw no positive of it); [] with < 2 photos."""
    shown = (y == 1).numpy()
    counts = shown.sum(0)
    rarest = np.where(shown, counts, np.iinfo(np.int64).max).argmin(1)
    strata = np.where(shown.any(1), rarest, -1).tolist()
    photos = [len({g for g, s in zip(groups, shown[:, c], strict=True) if s}) for c in
              np.flatnonzero(counts)]  # fmt: skip
    k = min(most, len(set(groups)), max(2, min(photos, default=0)))
    if k < 2:
        return []
    with warnings.catch_warnings():  # strata smaller than k: expected for rare classes
        warnings.simplefilter("ignore", UserWarning)
        return _split(strata, groups, seed, k)


def _split(
    labels: Sequence[int], groups: Sequence[str], seed: int, k: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    ids = {g: i for i, g in enumerate(sorted(set(groups)))}
    codes = np.array([ids[g] for g in groups])
    dummy = np.zeros(len(labels))
    return list(splitter.split(dummy, np.asarray(labels), codes))


def cross_validate(
    x: torch.Tensor, y: torch.Tensor, folds: list[tuple[np.ndarray, np.ndarray]], cw: torch.Tensor
) -> Generator[Event, None, list[dict[str, float]]]:
    """Held-out correct count, accuracy and log-loss (mean, standard error) for every C.
    Each fold walks C upwards from the previous solution (a warm start: a few iterations)."""
    losses = np.zeros((len(C_GRID), len(folds)))
    correct = np.zeros((len(C_GRID), len(folds)))

    def score(i: int, f: int, te: torch.Tensor, logits: torch.Tensor) -> None:
        losses[i, f] = float(functional.cross_entropy(logits, y[te]))
        correct[i, f] = float((logits.argmax(1) == y[te]).sum())

    yield from _walk_folds(x, y, folds, cw, len(cw), score)
    sizes = np.array([len(te) for _, te in folds])
    return [
        {
            "C": c,
            "cv_correct": int(correct[i].sum()),
            "cv_acc": float(correct[i].sum() / sizes.sum()),
            "cv_log_loss": float(losses[i].mean()),
            "cv_se": float(losses[i].std(ddof=1) / math.sqrt(len(folds))),
        }
        for i, c in enumerate(C_GRID)
    ]


def _walk_folds(
    x: torch.Tensor,
    y: torch.Tensor,
    folds: list[tuple[np.ndarray, np.ndarray]],
    cw: torch.Tensor,
    outputs: int,
    score: Callable[[int, int, torch.Tensor, torch.Tensor], None],
) -> Generator[Event, None, None]:
    """Per fold, fit every C upwards from the previous solution (a warm start) and hand
    ``score`` (C index, fold, held-out rows, their logits)."""
    yield PhaseStart("probe: choosing C", len(folds))
    for f, (train_idx, test_idx) in enumerate(folds):
        tr, te = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
        scale = Standardiser.fit(x[tr])
        xtr, xte = scale(x[tr]), scale(x[te])
        w, b, opt = _lbfgs(x.shape[1], outputs)
        for i, c in enumerate(C_GRID):
            _run(opt, (xtr, y[tr], w, b, cw), c, CV_ITERS)
            with torch.no_grad():
                score(i, f, te, xte @ w.T + b)
        yield Step("probe: choosing C", f + 1)


def best_c(rows: Sequence[dict[str, float]]) -> float:
    """The C with the most held-out images right; among those, the lowest held-out log-loss
    (the better calibrated: on easy data every C gets all right, and the strongest L2 would
    answer "Apple (0.48)"); an exact tie goes to the smaller C (the simpler model).
    Multi-label: the highest held-out mAP first, then the same."""
    if rows and "cv_map" in rows[0]:
        return min(rows, key=lambda r: (-_or_low(r["cv_map"]), r["cv_log_loss"], r["C"]))["C"]
    return min(rows, key=lambda r: (-r["cv_correct"], r["cv_log_loss"], r["C"]))["C"]


def _or_low(value: float) -> float:
    return -1.0 if math.isnan(value) else value


def cross_validate_multilabel(
    x: torch.Tensor, y: torch.Tensor, folds: list[tuple[np.ndarray, np.ndarray]], cw: torch.Tensor
) -> Generator[Event, None, list[dict[str, float]]]:
    """Held-out mAP of the pooled held-out probabilities (each photo held out once) and the
    held-out masked log-loss (mean, standard error over folds) for every C."""
    pooled = torch.zeros(len(C_GRID), *y.shape)
    losses = np.zeros((len(C_GRID), len(folds)))

    def score(i: int, f: int, te: torch.Tensor, logits: torch.Tensor) -> None:
        pooled[i, te] = logits.sigmoid()
        losses[i, f] = log_loss_and_acc(logits, y[te])[0]

    yield from _walk_folds(x, y, folds, cw, y.shape[1], score)
    truth = y.numpy()
    return [
        {
            "C": c,
            "cv_map": mean_average_precision(pooled[i].numpy(), truth),
            "cv_log_loss": float(np.nanmean(losses[i])),
            "cv_se": float(np.nanstd(losses[i], ddof=1) / math.sqrt(len(folds))),
        }
        for i, c in enumerate(C_GRID)
    ]


def fit_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    groups: Sequence[str],
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    *,
    class_weight: torch.Tensor,
    seed: int,
    max_rounds: int,
) -> Generator[Event, None, ProbeFit]:
    """Choose C by grouped CV, then fit on all of train in rounds of L-BFGS (a row each)."""
    multilabel = train_y.dim() == 2
    x, y = train_x.float(), train_y.float() if multilabel else train_y.long()
    if multilabel:
        folds = multilabel_folds(y, groups, seed)
    else:
        folds = grouped_folds(y.tolist(), groups, seed)
    note = ""
    if folds:
        validate = cross_validate_multilabel if multilabel else cross_validate
        cv = yield from validate(x, y, folds, class_weight)
        c = best_c(cv)
    else:
        cv, c = [], FALLBACK_C
        note = f"too few photos per class to cross-validate: C = {FALLBACK_C:g}"
    scale = Standardiser.fit(x)
    xs, vx = scale(x), scale(val_x.float())
    w, b, opt = _lbfgs(xs.shape[1], len(class_weight))
    fit = ProbeFit(w, b, c, len(folds), cv, note=note)
    for round_ in range(1, max_rounds + 1):
        yield PhaseStart("L-BFGS round", 1, round_, max_rounds)
        taken = _run(opt, (xs, y, w, b, class_weight), c, ROUND_ITERS)
        with torch.no_grad():
            _, train_loss = _penalised_loss(xs, y, w, b, c, class_weight)
            logits = xs @ w.T + b
            val_loss, val_acc = log_loss_and_acc(vx @ w.T + b, val_y)
        train_acc = log_loss_and_acc(logits, y)[1]
        fit.history.append(
            {"epoch": round_, "train_loss": float(train_loss), "train_acc": train_acc,
             "val_loss": val_loss, "val_acc": val_acc, "lbfgs_iters": taken}
        )  # fmt: skip
        yield EpochEnd(fit.history[-1], is_best=True)
        if taken < ROUND_ITERS:
            break  # converged: the gradient or the change fell below tolerance
    fit.weight, fit.bias = scale.fold(w.detach(), b.detach())
    return fit


# --- the multi-label objective ----------------------------------------------------------

#: Asymmetric loss (Ridnik et al., ICCV 2021), the paper's recommended setting: positives as
#: in BCE, easy negatives focused away (gamma 4) and those under p = 0.05 ignored (margin).
ASL_GAMMA_POS, ASL_GAMMA_NEG, ASL_MARGIN = 0.0, 4.0, 0.05
Array = npt.NDArray[Any]


def _bce_terms(
    logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None
) -> torch.Tensor:
    return functional.binary_cross_entropy_with_logits(
        logits, targets, pos_weight=pos_weight, reduction="none"
    )


def _asl_terms(
    logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None
) -> torch.Tensor:
    """Per-label asymmetric loss: -y (1-p)^g+ log p - (1-y) q^g- log(1-q), q = max(p-m, 0)."""
    p = logits.sigmoid()
    q = (p - ASL_MARGIN).clamp(min=0)
    log_not_q = (functional.logsigmoid(-logits).exp() + ASL_MARGIN).clamp(max=1).log()
    pos = (1 - p).pow(ASL_GAMMA_POS) * functional.logsigmoid(logits)
    if pos_weight is not None:
        pos = pos * pos_weight
    return -(targets * pos + (1 - targets) * q.pow(ASL_GAMMA_NEG) * log_not_q)


def masked_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    known: torch.Tensor,
    kind: str = "bce",
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The mean loss over the ``known`` labels: an unknown label (nobody verified it) adds
    nothing, whatever its target or logit, and gets no gradient; 0 when nothing is known."""
    terms = (_asl_terms if kind == "asl" else _bce_terms)(logits, targets, pos_weight)
    return torch.where(known, terms, 0.0).sum() / known.sum().clamp(min=1)


class MultiLabelLoss(nn.Module):
    """``loss(logits, y)`` for multi-label targets ``y`` (1 present, 0 absent, -1 unknown):
    :func:`masked_loss` with BCE or the asymmetric loss, and optional positive weights."""

    def __init__(self, kind: str = "bce", pos_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.pos_weight: torch.Tensor | None
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return masked_loss(logits, y.clamp(0, 1), y >= 0, self.kind, self.pos_weight)


def hits(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | int]:
    """(right, judged): top-1 right of ``len(y)``; multi-label, verified labels right at
    p = 0.5 of the verified labels (tensors stay on the device: no host sync)."""
    if y.dim() == 1:
        return (logits.argmax(1) == y).sum(), len(y)
    known = y >= 0
    return (((logits > 0) == (y > 0.5)) & known).sum(), known.sum()


def probabilities(logits: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Softmax over the classes, or (multi-label) a sigmoid per class."""
    return logits.sigmoid() if multilabel else logits.softmax(1)


def per_class_ap(probs: Array, targets: Array) -> Array:
    """AP of every class over the photos whose label for it was verified (the Open Images
    way: a prediction on an unknown label is neither right nor wrong); nan for a class with
    no verified positive.

    One class's AP: the photos ranked by score, the precision at each step of recall weighted
    by that step, tied scores one step (scikit-learn's ``average_precision_score``). Computed
    for all classes at once: unknown labels rank last at -inf, below every positive, where
    they change nothing."""
    truth = targets == 1
    positives = truth.sum(0)
    if not len(targets):
        return np.full(targets.shape[1], np.nan)
    scores = np.where(targets >= 0, probs, -np.inf)
    order = np.argsort(-scores, axis=0, kind="stable")
    ranked = np.take_along_axis(scores, order, 0)
    hit = np.take_along_axis(truth, order, 0).astype(np.float64)
    n = len(ranked)
    ends = np.ones(ranked.shape, bool)
    ends[:-1] = ranked[:-1] != ranked[1:]  # the last row of each group of tied scores
    at = np.where(ends, np.arange(n)[:, None], n)
    group_end = np.minimum.accumulate(at[::-1], axis=0)[::-1]
    precision = np.take_along_axis(np.cumsum(hit, 0), group_end, 0) / (group_end + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: Array = np.where(positives > 0, (hit * precision).sum(0) / positives, np.nan)
    return out


def mean_average_precision(probs: Array, targets: Array) -> float:
    """The mean of :func:`per_class_ap` over the classes with a verified positive."""
    aps = per_class_ap(probs, targets)
    return float(np.mean(aps[~np.isnan(aps)])) if (~np.isnan(aps)).any() else float("nan")


def choose_thresholds(
    probs: Array, targets: Array, target_precision: float | None = None
) -> tuple[list[float], list[str]]:
    """Per class, the probability from which it is reported, chosen on verified labels: the
    best F1, or the lowest threshold whose precision reaches ``target_precision`` (most
    recall); thresholds sit halfway between neighbouring scores. Returns the thresholds and,
    per class, how each was chosen."""
    chosen, how = [], []
    for c in range(targets.shape[1]):
        known = targets[:, c] >= 0
        t, why = _threshold(probs[known, c], targets[known, c] == 1, target_precision)
        chosen.append(t)
        how.append(why)
    return chosen, how


def _threshold(scores: Array, truth: Array, target: float | None) -> tuple[float, str]:
    positives = int(truth.sum())
    if not positives:
        return DEFAULT_THRESHOLD, f"no verified positive: default {DEFAULT_THRESHOLD:g}"
    order = np.argsort(-scores, kind="stable")
    ranked, hit = scores[order], truth[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    tp = np.cumsum(hit)[last]
    precision, recall = tp / (last + 1), tp / positives
    f1 = np.divide(2 * precision * recall, precision + recall, where=precision + recall > 0,
                   out=np.zeros_like(precision))  # fmt: skip
    if target is None:
        at, why = int(np.argmax(f1)), "best F1"
    elif (precision >= target).any():
        at, why = int(np.flatnonzero(precision >= target)[-1]), f"precision >= {target:g}"
    else:
        at = int(np.argmax(precision))
        why = f"precision {target:g} not reached (best {precision[at]:.3f})"
    below = ranked[last[at] + 1] if last[at] + 1 < len(ranked) else ranked[last[at]]
    return float((ranked[last[at]] + below) / 2), why
