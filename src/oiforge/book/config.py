"""Book settings from a YAML file (``examples/book.yaml``) and flags, into one ``PlanRequest``.

Keys are flat: any ``LayoutOptions`` or ``SelectOptions`` field, plus ``pick`` (letter ->
class), ``skip`` (letters), ``custom`` (name -> folder) and ``overrides`` (a file). Flags win
over the file; the file wins over the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from oiforge.book.choose import parse_letter_map, parse_letters
from oiforge.book.custom import Overrides, load_overrides, parse_custom
from oiforge.book.fonts import default_family
from oiforge.book.model import LayoutOptions, SelectOptions
from oiforge.book.plan import PlanRequest
from oiforge.errors import SpecError

EXTRA_KEYS = ("pick", "custom", "overrides")


def load_config(path: str | Path | None) -> dict[str, Any]:
    """The YAML mapping (empty without a file); relative paths resolve beside the file."""
    if path is None:
        return {}
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"book config {p}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"book config {p}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"book config {p}: a mapping of settings (see examples/book.yaml)")
    known = set(LayoutOptions.model_fields) | set(SelectOptions.model_fields) | set(EXTRA_KEYS)
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise SpecError(f"book config {p}: unknown settings {', '.join(unknown)}")
    for key in ("overrides",):
        if isinstance(data.get(key), str):
            data[key] = str((p.parent / data[key]).expanduser())
    if isinstance(data.get("custom"), dict):
        data["custom"] = {
            k: str((p.parent / str(v)).expanduser()) for k, v in data["custom"].items()
        }
    return data


def _as_text_map(value: Any, what: str) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, str):
        return value
    raise SpecError(f"{what}: a mapping LETTER: Class (or 'A=Apple,B=Bird')")


def _section(model: type[Any], settings: Mapping[str, Any]) -> Any:
    fields = {k: v for k, v in settings.items() if k in model.model_fields and v is not None}
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or model.__name__
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SpecError(f"book setting {where}: {message}") from exc


def build_request(file_settings: Mapping[str, Any], flags: Mapping[str, Any]) -> PlanRequest:
    """Merge flags (``None`` = not given) over file settings into a ``PlanRequest``."""
    merged = {**file_settings, **{k: v for k, v in flags.items() if v is not None}}
    pins = parse_letter_map(_as_text_map(merged.get("pick", {}), "pick"))
    skip = merged.get("skip", ())
    skip_text = ",".join(skip) if isinstance(skip, list | tuple) else str(skip)
    select = _section(SelectOptions, {**merged, "pins": pins, "skip": parse_letters(skip_text)})
    merged.setdefault("font", default_family())
    layout = _section(LayoutOptions, merged)
    custom_raw = merged.get("custom") or {}
    items = (
        [f"{k}={v}" for k, v in custom_raw.items()]
        if isinstance(custom_raw, dict)
        else list(custom_raw)
    )
    customs = tuple(parse_custom(item) for item in items)
    overrides = load_overrides(merged["overrides"]) if merged.get("overrides") else Overrides()
    return PlanRequest(layout=layout, select=select, custom=customs, overrides=overrides)
