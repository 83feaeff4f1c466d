"""Progress events that training and evaluation yield (phases, steps, epochs, notices, auto's
candidates, the end); the CLI draws them (only the CLI prints). A shared leaf: no stage state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PhaseStart:
    """A long phase begins: ``features`` (probe), or ``epoch`` ``n`` of ``epochs``."""

    phase: str
    total_steps: int
    epoch: int = 0
    epochs: int = 0


@dataclass(frozen=True)
class Step:
    """One batch done, with running averages of the phase so far."""

    phase: str
    step: int
    loss: float = float("nan")
    acc: float = float("nan")


@dataclass(frozen=True)
class EpochEnd:
    """An epoch's metrics row (as written to metrics.csv) and whether it is the new best."""

    row: dict[str, Any]
    is_best: bool


@dataclass(frozen=True)
class Notice:
    """Something the user should know (skipped images, early stop, budget stop)."""

    level: str
    text: str


@dataclass(frozen=True)
class CandidateEnd:
    """``--mode auto``: candidate ``number`` of ``total`` is done (or skipped); ``row`` is its
    line of the candidates table (name, val_acc, val_loss, seconds, status)."""

    number: int
    total: int
    row: dict[str, Any]


@dataclass(frozen=True)
class Finished:
    """The run is over; ``summary`` is also written as ``summary.json``."""

    run_dir: str
    summary: dict[str, Any] = field(default_factory=dict)


Event = PhaseStart | Step | EpochEnd | Notice | CandidateEnd | Finished
