"""The linear probe: multinomial logistic regression on cached features, fitted to
convergence, its regularisation chosen by cross-validation on the training images.

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
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional

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
    """(objective, data loss): weighted mean cross-entropy + |W|^2 / (2 C n)."""
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


def fit_once(x: torch.Tensor, y: torch.Tensor, c: float, cw: torch.Tensor) -> nn.Linear:
    """A converged L2-penalised multinomial logistic regression (standardised inputs)."""
    w, b, opt = _lbfgs(x.shape[1], len(cw))
    _run(opt, (x, y, w, b, cw), c, CV_ITERS)
    head = nn.Linear(x.shape[1], len(cw))
    with torch.no_grad():
        head.weight.copy_(w)
        head.bias.copy_(b)
    return head


def log_loss_and_acc(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    if not len(y):
        return float("nan"), float("nan")
    loss = float(functional.cross_entropy(logits, y))
    return loss, float((logits.argmax(1) == y).float().mean())


def grouped_folds(
    labels: Sequence[int], groups: Sequence[str], seed: int, most: int = FOLDS
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold splits that keep each group (source photo) in one fold; k is at most
    the smallest class's number of groups; [] when that is below 2."""
    from sklearn.model_selection import StratifiedGroupKFold

    per_class: dict[int, set[str]] = {}
    for label, group in zip(labels, groups, strict=True):
        per_class.setdefault(label, set()).add(group)
    k = min(most, min(len(g) for g in per_class.values()))
    if k < 2:
        return []
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
    yield PhaseStart("probe: choosing C", len(folds))
    for f, (train_idx, test_idx) in enumerate(folds):
        tr, te = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
        scale = Standardiser.fit(x[tr])
        xtr, xte = scale(x[tr]), scale(x[te])
        w, b, opt = _lbfgs(x.shape[1], len(cw))
        for i, c in enumerate(C_GRID):
            _run(opt, (xtr, y[tr], w, b, cw), c, CV_ITERS)
            with torch.no_grad():
                logits = xte @ w.T + b
                losses[i, f] = float(functional.cross_entropy(logits, y[te]))
                correct[i, f] = float((logits.argmax(1) == y[te]).sum())
        yield Step("probe: choosing C", f + 1)
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


def best_c(rows: Sequence[dict[str, float]]) -> float:
    """The C with the most held-out images right; among those, the lowest held-out log-loss
    (the better calibrated: on easy data every C gets all right, and the strongest L2 would
    answer "Apple (0.48)"); an exact tie goes to the smaller C (the simpler model)."""
    return min(rows, key=lambda r: (-r["cv_correct"], r["cv_log_loss"], r["C"]))["C"]


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
    x, y = train_x.float(), train_y.long()
    folds = grouped_folds(y.tolist(), groups, seed)
    note = ""
    if folds:
        cv = yield from cross_validate(x, y, folds, class_weight)
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
        train_acc = float((logits.argmax(1) == y).float().mean())
        fit.history.append(
            {"epoch": round_, "train_loss": float(train_loss), "train_acc": train_acc,
             "val_loss": val_loss, "val_acc": val_acc, "lbfgs_iters": taken}
        )  # fmt: skip
        yield EpochEnd(fit.history[-1], is_best=True)
        if taken < ROUND_ITERS:
            break  # converged: the gradient or the change fell below tolerance
    fit.weight, fit.bias = scale.fold(w.detach(), b.detach())
    return fit
