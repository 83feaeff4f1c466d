"""The pipeline: one spec file driven through every stage by ``oiforge run``.

Public API::

    from oiforge.pipeline import run
    result = run("examples/sandwiches.yaml")          # ./sandwiches/: selection → … → model
    result.ran                                        # ["select", "download", ...]
    result.stage("build").why                         # "spec changed: build.size 224 -> 160"
    run("examples/sandwiches.yaml", dry_run=True)     # decide only: what would run, and why
    run(spec, from_stage="train", until="evaluate")   # a slice of the stages

Each stage runs only when its settings, its input files or its own outputs changed since its
last success (``oiforge-run.json`` in the working folder); a killed run continues where it
stopped. ``Observer`` receives progress (the CLI draws it with Rich).

Modules: ``settings`` (the spec resolved for a working folder), ``stages`` (what each stage
depends on and writes), ``steps`` (each stage run through its public API), ``state`` (the state
file and content digests), ``runner`` (deciding and running), ``observer``, ``results``.
"""

from __future__ import annotations

from oiforge.pipeline.observer import Observer
from oiforge.pipeline.results import Action, Artefact, RunResult, StageResult
from oiforge.pipeline.runner import run
from oiforge.pipeline.settings import Settings, load_settings
from oiforge.pipeline.stages import STAGE_NAMES
from oiforge.pipeline.state import STATE_FILE

__all__ = [
    "STAGE_NAMES",
    "STATE_FILE",
    "Action",
    "Artefact",
    "Observer",
    "RunResult",
    "Settings",
    "StageResult",
    "load_settings",
    "run",
]
