"""``oiforge run SPEC``: every stage of a spec in order, each only when something it depends
on changed since its last success (its settings, its input files, its own outputs).

Before a stage runs its state entry says ``started``; after, ``done`` with the digests of what
it wrote. A run killed at any point leaves the stage ``started``: the next run does it again,
and the stage's own resume (download journal, build cache, train checkpoint) makes that cheap.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oiforge.errors import InvalidInputError, StageError
from oiforge.pipeline.observer import Observer
from oiforge.pipeline.results import Action, Artefact, RunResult, StageResult
from oiforge.pipeline.settings import Settings, load_settings
from oiforge.pipeline.stages import STAGE_NAMES, STAGES, Stage
from oiforge.pipeline.state import State, hold_workdir

#: The stages whose outputs each stage reads (dry runs: an upstream that runs may change them).
UPSTREAM = {
    "select": (),
    "download": ("select",),
    "build": ("select", "download"),
    "train": ("build",),
    "evaluate": ("build", "train"),
    "export": ("train",),
    "book": (),
    "present": ("select", "download", "build", "train", "evaluate", "export"),
}


@dataclass(frozen=True)
class Decision:
    """Whether a stage runs, why, and the fingerprint it would be recorded with."""

    action: Action
    why: str
    settings: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str | None] = field(default_factory=dict)
    resume: bool = False


def run(
    spec_path: str | Path,
    *,
    out: str | Path | None = None,
    until: str | None = None,
    from_stage: str | None = None,
    dry_run: bool = False,
    observer: Observer | None = None,
) -> RunResult:
    """Run (or with ``dry_run`` only decide) every stage of the spec at ``spec_path`` in its
    working folder (``out``, the spec's ``workdir:``, or ``./<spec stem>``); ``from_stage`` and
    ``until`` limit the stages considered. Returns what each stage did and why."""
    settings = load_settings(Path(spec_path), Path(out) if out is not None else None)
    asked = _asked(settings, from_stage, until)
    obs = observer or Observer()
    if dry_run:
        _check_upstream(settings, State(settings.workdir), asked, from_stage)
        return _dry_run(settings, asked)
    with hold_workdir(settings.workdir):
        state = State(settings.workdir)
        _check_upstream(settings, state, asked, from_stage)
        results = [_stage(stage, settings, state, asked, obs) for stage in STAGES]
    return RunResult(Path(spec_path), settings.workdir, False, tuple(results))


def _asked(settings: Settings, from_stage: str | None, until: str | None) -> dict[str, str]:
    """Stage -> why it is off this time (absent: it is considered)."""
    for flag, name in (("--from", from_stage), ("--until", until)):
        if name is not None and name not in STAGE_NAMES:
            raise InvalidInputError(f"{flag} {name}: stages are {', '.join(STAGE_NAMES)}")
        stage = next((s for s in STAGES if s.name == name), None)
        if stage is not None and _missing_section(settings, stage):
            raise InvalidInputError(f"{flag} {name}: the spec has no {stage.section}: section")
    first = STAGE_NAMES.index(from_stage) if from_stage else 0
    last = STAGE_NAMES.index(until) if until else len(STAGE_NAMES) - 1
    if first > last:
        raise InvalidInputError(f"--from {from_stage} comes after --until {until}")
    off = {}
    for i, stage in enumerate(STAGES):
        if _missing_section(settings, stage):
            off[stage.name] = f"no {stage.section}: section in the spec"
        elif i < first:
            off[stage.name] = f"not asked (--from {from_stage})"
        elif i > last:
            off[stage.name] = f"not asked (--until {until})"
    return off


def _missing_section(settings: Settings, stage: Stage) -> bool:
    return stage.section is not None and getattr(settings.spec, stage.section) is None


def _check_upstream(
    settings: Settings, state: State, off: dict[str, str], from_stage: str | None
) -> None:
    """With ``--from``, what the stages before it made must be in the working folder."""
    if from_stage is None:
        return
    by_name = {stage.name: stage for stage in STAGES}
    for stage in STAGES:
        if stage.name in off:
            continue
        for before in (by_name[u] for u in UPSTREAM[stage.name] if u in off):
            for out in before.outputs:
                if state.digest(settings.path(out.path)) is None:
                    raise StageError(
                        f"--from {from_stage}: {stage.name} needs {out.path} (from "
                        f"{before.name}), which is not in {settings.workdir}; run the earlier "
                        "stages first (without --from)"
                    )


def decide(stage: Stage, settings: Settings, state: State) -> Decision:
    """Whether ``stage`` must run now, and why (see the module docstring)."""
    wanted = _jsonable(stage.settings(settings))
    inputs = {label: state.digest(path) for label, path in stage.inputs(settings).items()}
    prev = state.stages.get(stage.name)
    why = _why_stale(stage, settings, state, prev, wanted, inputs)
    if why is None and stage.pending is not None:
        why = stage.pending(settings)
    if why is None:
        return Decision("skip", "up to date", wanted, inputs)
    unfinished = prev is not None and prev.get("status") != "done"
    same = prev is not None and (prev.get("settings"), prev.get("inputs")) == (wanted, inputs)
    resume = unfinished and same
    return Decision("run", why, wanted, inputs, resume)


def _why_stale(
    stage: Stage,
    settings: Settings,
    state: State,
    prev: dict[str, Any] | None,
    wanted: dict[str, Any],
    inputs: dict[str, str | None],
) -> str | None:
    if prev is None:
        return "never ran"
    if prev.get("status") == "failed":
        return f"failed last time: {prev.get('error', '')}"
    if prev.get("status") != "done":
        return "did not finish last time"
    changed = _changed(prev.get("settings", {}), wanted)
    if changed:
        return f"spec changed: {changed}"
    before: dict[str, Any] = prev.get("inputs", {})
    for label in sorted(set(before) | set(inputs)):
        if before.get(label) != inputs.get(label):
            what = "missing" if label in before and inputs.get(label) is None else "changed"
            return f"input {what}: {label}"
    made: dict[str, Any] = prev.get("outputs", {})
    for out in stage.outputs:
        now = state.digest(settings.path(out.path))
        if now != made.get(out.path):
            return f"output {'missing' if now is None else 'changed'}: {out.path}"
    return None


def _changed(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    shown = [f"{k} {_short(old.get(k))} -> {_short(new.get(k))}" for k in keys[:3]]
    return ", ".join(shown) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """As the state file will give it back (tuples become lists, paths strings)."""
    out: dict[str, Any] = json.loads(json.dumps(value, sort_keys=True, default=str))
    return out


def _stage(
    stage: Stage, settings: Settings, state: State, off: dict[str, str], obs: Observer
) -> StageResult:
    if stage.name in off:
        return StageResult(stage.name, "off", off[stage.name])
    decision = decide(stage, settings, state)
    if decision.action == "skip":
        result = StageResult(
            stage.name, "skip", decision.why, artefacts=_artefacts(stage, settings)
        )
        obs.stage_finished(result)
        return result
    obs.stage_started(stage.name, decision.why)
    fingerprint = {"settings": decision.settings, "inputs": decision.inputs}
    state.record(stage.name, {"status": "started", **fingerprint})
    clock = time.perf_counter()
    try:
        summary = stage.run(settings, obs, decision.resume)
    except BaseException as exc:  # a Ctrl-C too: the next run says why it runs again
        error = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)[:200]
        state.record(stage.name, {"status": "failed", "error": error, **fingerprint})
        raise
    seconds = round(time.perf_counter() - clock, 3)
    outputs = {o.path: state.digest(settings.path(o.path)) for o in stage.outputs}
    state.record(
        stage.name, {"status": "done", "outputs": outputs, "seconds": seconds, **fingerprint}
    )
    result = StageResult(
        stage.name, "run", decision.why, True, seconds, summary, _artefacts(stage, settings)
    )
    obs.stage_finished(result)
    return result


def _dry_run(settings: Settings, off: dict[str, str]) -> RunResult:
    state = State(settings.workdir)
    results: list[StageResult] = []
    runs: set[str] = set()
    for stage in STAGES:
        if stage.name in off:
            results.append(StageResult(stage.name, "off", off[stage.name]))
            continue
        decision = decide(stage, settings, state)
        first = next((u for u in UPSTREAM[stage.name] if u in runs), None)
        if decision.action == "skip" and first is not None:
            decision = Decision("run", f"after {first} (its output may change)")
        if decision.action == "run":
            runs.add(stage.name)
        results.append(StageResult(stage.name, decision.action, decision.why))
    return RunResult(settings.spec_path, settings.workdir, True, tuple(results))


def _artefacts(stage: Stage, settings: Settings) -> tuple[Artefact, ...]:
    found = []
    for out in stage.outputs:
        path = settings.path(out.path)
        if path.exists():
            found.append(Artefact(path, _size(path), out.what))
    return tuple(found)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, names in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, n)) for n in names)  # noqa: PTH118,PTH202
    return total
