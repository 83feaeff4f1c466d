"""``--backend``, ``--ray-address`` and ``--shards`` for a Typer command, as one decorator.

    @add_backend_options
    def download_command(..., backend: BackendOptions = LOCAL) -> None:
        run_download_sharded(selection, out, config, endpoints, **backend.kwargs())

The decorator replaces the command's ``backend`` parameter with the three options and hands
the command one validated, frozen :class:`BackendOptions`. It imports neither Ray nor a stage,
so ``oiforge --help`` stays fast.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import typer

from oiforge.distributed.engine import check_backend

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class BackendOptions:
    """Where the shards run: ``local`` (default) or ``ray`` (``address``), and how many."""

    backend: str = "local"
    address: str | None = None
    num_shards: int | None = None

    def __post_init__(self) -> None:
        check_backend(self.backend, self.address)
        if self.num_shards is not None:
            from oiforge.distributed.shards import check_num_shards

            check_num_shards(self.num_shards)

    @property
    def is_sharded(self) -> bool:
        """True for ``--backend ray`` or explicit ``--shards``: the stage runs over shards
        (``run_download_sharded`` / ``run_build_sharded``); else the CLI calls it directly."""
        return self.backend != "local" or self.num_shards is not None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``run_download_sharded`` / ``run_build_sharded``."""
        return {"backend": self.backend, "address": self.address, "num_shards": self.num_shards}


LOCAL: Final = BackendOptions()

_OPTIONS: Final = (
    inspect.Parameter(
        "backend_name", inspect.Parameter.KEYWORD_ONLY, annotation=str,
        default=typer.Option("local", "--backend", help="Where shards run: local or ray."),
    ),
    inspect.Parameter(
        "ray_address", inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
        default=typer.Option(
            None, "--ray-address",
            help="Ray cluster to join (auto, host:port, ray://host:10001); default: "
            "$RAY_ADDRESS, else a new local instance, stopped after the run.",
        ),
    ),
    inspect.Parameter(
        "shards", inspect.Parameter.KEYWORD_ONLY, annotation=int | None,
        default=typer.Option(None, "--shards", help="Shards (default: ~10,000 images each)."),
    ),
)  # fmt: skip


def add_backend_options(command: F) -> F:
    """Give a Typer command ``--backend/--ray-address/--shards`` (see the module docstring)."""
    sig = inspect.signature(command)
    if "backend" not in sig.parameters:
        raise TypeError(f"{command.__name__} needs a `backend: BackendOptions` parameter")
    hints = typing.get_type_hints(command)  # resolved in the command's own module
    kept = [p for name, p in sig.parameters.items() if name != "backend"]
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in kept]

    @functools.wraps(command)
    def wrapper(
        *args: Any, backend_name: str, ray_address: str | None, shards: int | None, **kw: Any
    ) -> Any:
        options = BackendOptions(backend_name, ray_address or None, shards)
        return command(*args, backend=options, **kw)

    wrapper.__signature__ = sig.replace(parameters=[*params, *_OPTIONS])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{p.name: p.annotation for p in params},
        **{p.name: p.annotation for p in _OPTIONS},
        "return": hints.get("return", None),
    }
    del wrapper.__wrapped__  # Typer must read the new signature, not the command's
    return wrapper  # type: ignore[return-value]
