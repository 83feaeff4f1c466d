"""The house rules of ARCHITECTURE.md, checked on the source: who may import whom, stage size,
and that every stage's ``__all__`` is exactly its public API.

Stages import ``spec``, ``contracts``, their own package and the shared leaf modules; another
stage only where :data:`ALLOWED` says so (with the reason), and then through its package's
public API unless :data:`INTERNAL` names the module. ``cli`` imports everything; nothing
imports ``cli``.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import oiforge

SRC = Path(oiforge.__file__).parent
#: Shared leaf modules (and ``oiforge`` itself, for ``__version__``): any stage may import them.
LEAVES = frozenset(
    {"", "arrays", "atomic", "contracts", "endpoints", "errors", "errtext", "headers", "lazy",
     "licences", "orientation", "paths", "pixels", "progress", "reviews", "spec"}
)  # fmt: skip
STAGES = (
    "book", "browse", "build", "catalog", "distributed", "download", "evaluate", "mirror",
    "pipeline", "postgres", "present", "serve", "stats", "train",
)  # fmt: skip
#: Stage -> other stages it may import, and why.
ALLOWED = {
    "distributed": {"download", "build"},  # runs their stage functions over shards
    "evaluate": {"train"},  # loads the trained model and reuses train's data pipeline
    "serve": {"train"},  # export only: rebuilds the trained model to write model.onnx
    "stats": {"catalog"},  # statistics of the catalog's label tables
    "postgres": {"catalog"},  # the catalog's second back end, same selection SQL
    "browse": {"catalog"},  # searches classes, walks the hierarchy
    "book": {"catalog"},  # picks classes and photos from the catalog
    "mirror": {"catalog"},  # impersonates the hosts of the catalog's official files
    "present": {"train", "evaluate", "serve"},  # measures the pipeline it presents
    "__init__": {"pipeline"},  # `oiforge.run(spec)`, the package's one-call API (lazy)
    # `oiforge run`: drives every stage through its public API
    "pipeline": {
        "catalog",
        "postgres",
        "download",
        "distributed",
        "build",
        "train",
        "evaluate",
        "serve",
        "book",
        "present",
    },
}
#: Modules of another stage imported directly, not through its package's API, and why.
INTERNAL = {
    ("postgres", "oiforge.catalog.select"),  # the same target resolution as select()
    ("postgres", "oiforge.catalog.selectsql"),  # the same SQL as select()
    ("mirror", "oiforge.catalog.files"),  # the official file table it serves
    ("serve", "oiforge.train.models"),  # export --tta: the test-time views inside the graph
}
#: evaluate reaches into train's modules until train's restructuring gives it an API; present
#: times the serving path and the training estimate from their modules.
INTERNAL_PREFIXES = {
    ("evaluate", "oiforge.train."),
    ("present", "oiforge.train."),
    ("present", "oiforge.serve."),
    ("pipeline", "oiforge.train."),  # train's progress events and its DDP launch
}
#: Only these serve modules may import train (torch stays off the serving path).
SERVE_TRAIN = {"export.py"}
MAX_MODULES = 12  # per stage, __init__ not counted (ARCHITECTURE.md: "about a dozen at most")
#: Stages other sessions restructure; checked once that lands.
NOT_YET_SMALL: frozenset[str] = frozenset()


def _imports(path: Path) -> Iterator[str]:
    """Every absolute ``oiforge...`` module a file imports (also inside functions)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "oiforge":
                yield from (f"oiforge.{a.name}" for a in node.names if a.name != "__version__")
                yield "oiforge"
            elif node.module.startswith("oiforge."):
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("oiforge"))


def _violations(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        owner = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for module in _imports(path):
            parts = module.split(".")
            target = parts[1] if len(parts) > 1 else ""
            where = f"{rel} imports {module}"
            if target == "cli" and owner != "cli":
                yield f"{where}: nothing imports cli"
            if owner == "cli" or target in (owner, "cli") or target in LEAVES - {"contracts"}:
                continue
            if target == "contracts":
                continue
            if owner in LEAVES:
                yield f"{where}: a shared leaf module imports no stage"
            elif target not in ALLOWED.get(owner, set()):
                yield f"{where}: {owner} may not import {target} (see ALLOWED)"
            elif owner == "serve" and path.name not in SERVE_TRAIN:
                yield f"{where}: only serve/export.py may import train"
            elif (
                len(parts) > 2
                and (owner, module) not in INTERNAL
                and not any(owner == o and module.startswith(p) for o, p in INTERNAL_PREFIXES)
            ):
                yield f"{where}: go through oiforge.{target}'s public API (or see INTERNAL)"


def test_stages_import_each_other_only_as_allowed() -> None:
    assert list(_violations(SRC)) == []


def test_the_checker_sees_violations(tmp_path: Path) -> None:
    files = {
        "download/a.py": "def f():\n    from oiforge.train import train\n",  # not allowed
        "serve/app.py": "import oiforge.train\n",  # only export.py may
        "stats/q.py": "from oiforge.catalog.counts import class_counts\n",  # not the API
        "errors.py": "from oiforge import download\n",  # a leaf imports no stage
        "book/b.py": "from oiforge.cli import app\n",  # nothing imports cli
        "stats/ok.py": "from oiforge.catalog import open_catalog\nfrom oiforge import spec\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    found = list(_violations(tmp_path))
    assert len(found) == 5, found
    assert not any(v.startswith("stats/ok.py") for v in found)


@pytest.mark.parametrize("stage", [s for s in STAGES if s not in NOT_YET_SMALL])
def test_a_stage_is_a_handful_of_modules(stage: str) -> None:
    modules = [m.name for m in pkgutil.iter_modules([str(SRC / stage)])]
    assert len(modules) <= MAX_MODULES, f"{stage}: {len(modules)} modules: {modules}"


#: The lazy-import machinery some packages need (``oiforge --help`` stays fast).
_MACHINERY = {"annotations", "TYPE_CHECKING", "lazy_attributes"}


def _order(name: str) -> tuple[int, str]:
    """ruff's ``__all__`` order: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


@pytest.mark.parametrize("stage", [*STAGES, "contracts"])
def test_all_is_exactly_the_public_api(stage: str) -> None:
    package = importlib.import_module(f"oiforge.{stage}")
    exported = list(package.__all__)
    assert exported == sorted(exported, key=_order), f"oiforge.{stage}.__all__ is not sorted"
    for name in exported:
        assert getattr(package, name) is not None, name
    submodules = {m.name for m in pkgutil.iter_modules(package.__path__)}
    public = {n for n in vars(package) if not n.startswith("_")} - submodules - _MACHINERY
    assert public <= set(exported), f"public but not in __all__: {sorted(public - set(exported))}"
