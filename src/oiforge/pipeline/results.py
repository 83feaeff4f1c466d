"""What ``oiforge run`` reports: per stage, whether it ran and why, and what it made."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: run: it ran (or, in a dry run, would run); skip: it is up to date; off: not this time
#: (outside --from/--until, or the spec has no section for it)
Action = Literal["run", "skip", "off"]


@dataclass(frozen=True)
class Artefact:
    """A file or folder a stage made: where, how big (bytes, a folder's files summed), what."""

    path: Path
    size: int
    what: str


@dataclass(frozen=True)
class StageResult:
    """One stage of a run: what was done and why, how long it took, what it made."""

    stage: str
    action: Action
    why: str
    ran: bool = False  # True only when it ran now (never in a dry run)
    seconds: float = 0.0
    summary: str = ""  # one line from the stage (rows selected, images fetched, accuracy...)
    artefacts: tuple[Artefact, ...] = ()


@dataclass(frozen=True)
class RunResult:
    """A whole run: the working folder and every stage in pipeline order."""

    spec: Path
    workdir: Path
    dry_run: bool
    stages: tuple[StageResult, ...]

    @property
    def ran(self) -> list[str]:
        """The stages that ran now."""
        return [s.stage for s in self.stages if s.ran]

    @property
    def artefacts(self) -> list[Artefact]:
        """Everything the stages of this spec have made so far, in pipeline order."""
        return [a for s in self.stages for a in s.artefacts]

    def stage(self, name: str) -> StageResult:
        """The result of one stage by name."""
        return next(s for s in self.stages if s.stage == name)
