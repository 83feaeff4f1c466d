"""Every CLI option of a pipeline stage has a spec key (docs/spec.md lists them), or a reason
here why a spec has none; the CLI and the spec agree on defaults; docs/spec.md is current."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: (command, CLI parameter) with no spec key, and why.
NOT_IN_SPEC = {
    # `oiforge run` decides every path inside its working folder
    ("select", "out"): "selection.parquet",
    ("download", "selection"): "selection.parquet",
    ("download", "out"): "store/",
    ("build", "selection"): "selection.parquet",
    ("build", "store"): "store/",
    ("build", "out"): "dataset/",
    ("train", "dataset"): "dataset/",
    ("train", "out"): "run/",
    ("evaluate", "run"): "run/",
    ("export", "run_dir"): "run/",
    ("export", "out"): "run/ (model.onnx beside the weights)",
    ("book", "out"): "book/",
    ("present", "source"): "run/",
    ("present", "out"): "deck/",
    ("present", "dataset"): "dataset/",
    ("present", "selection"): "selection.parquet",
    ("present", "store"): "store/",
    ("present", "spec"): "the spec being run",
    # the spec is the file these options point at
    ("select", "spec_file"): "the spec itself",
    ("build", "spec_file"): "the spec itself",
    ("book", "config"): "the spec's book: section is the settings file",
    # the runner resumes a killed train itself (same settings and dataset: resume)
    ("train", "resume"): "decided by the runner",
    # prints a store's counts and runs nothing
    ("download", "status"): "a report, not a setting",
    # re-check a store against its journal: a check, not a setting of the download
    ("download", "verify"): "`oiforge download --verify STORE`",
    ("download", "remote"): "goes with --verify",
    # rebuilds a dataset byte-identically from its lock: the opposite of building from a spec
    ("build", "lock"): "`oiforge build --lock`",
    # N seeds make N run folders; evaluate, export and present take one run
    ("train", "seeds"): "`oiforge train --seeds` on the built dataset",
    # a multi-machine job starts `oiforge train` on every machine; `oiforge run` runs on one
    # (train.gpus / train.procs scale it on this machine)
    ("train", "nodes"): "multi-machine DDP",
    ("train", "node_rank"): "multi-machine DDP",
    ("train", "master_addr"): "multi-machine DDP",
    ("train", "master_port"): "multi-machine DDP",
}


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_spec", ROOT / "scripts" / "gen_spec_reference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def test_every_stage_option_has_a_spec_key(gen: ModuleType) -> None:
    keys = {k.key for k in gen.spec_keys()}
    missing = [
        f"oiforge {command} {param.opts[0] if param.opts else param.name} -> {key}"
        for key, uses in gen.cli_options().items()
        for command, param in uses
        if (command, param.name) not in NOT_IN_SPEC and key not in keys
    ]
    assert missing == [], "add these keys to spec.py (or a reason to NOT_IN_SPEC)"


def test_the_allow_list_names_real_options(gen: ModuleType) -> None:
    real = {(c, p.name) for uses in gen.cli_options().values() for c, p in uses}
    assert set(NOT_IN_SPEC) <= real, sorted(set(NOT_IN_SPEC) - real)


def _given(value: Any) -> bool:
    """A real default (``None`` or ``[]`` in a CLI option: "not given, the spec decides")."""
    return value is not None and not (isinstance(value, list | tuple) and not value)


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value) if isinstance(value, Path) else value


def test_cli_and_spec_defaults_agree(gen: ModuleType) -> None:
    defaults = {k.key: k.value for k in gen.spec_keys()}
    differ = [
        f"{command} {param.opts[0]}: CLI {param.default!r}, spec {defaults[key]!r}"
        for key, uses in gen.cli_options().items()
        for command, param in uses
        if key in defaults and _given(param.default) and _given(defaults[key])
        and _plain(param.default) != _plain(defaults[key])
    ]  # fmt: skip
    assert differ == []


def test_spec_reference_is_up_to_date(gen: ModuleType) -> None:
    current = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    assert current == gen.render(), "run: python scripts/gen_spec_reference.py"


@pytest.mark.parametrize("name", ["sandwiches.yaml", "animals10.yaml"])
def test_the_example_specs_load_whole(name: str, tmp_path: Path) -> None:
    from oiforge.pipeline import load_settings

    settings = load_settings(ROOT / "examples" / name, tmp_path)
    assert settings.workdir == tmp_path.resolve()
