"""Write docs/spec.md: every key of a spec file, its type, default and CLI option, from the code.

Run `python scripts/gen_spec_reference.py` after adding a spec key or a stage option; a test
fails when the file is stale, and another when a stage's CLI option has no spec key
(tests/pipeline/test_spec_keys.py). A CLI option's key is ``<section>.<parameter>`` unless
:data:`RENAMED` says otherwise.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer.main
from pydantic import BaseModel

from oiforge.cli import app

OUT = Path(__file__).resolve().parent.parent / "docs" / "spec.md"
#: The commands whose options a spec stands for, and the section each one reads.
COMMANDS = ("select", "download", "build", "train", "evaluate", "export", "book", "present")
#: (command, CLI parameter) -> spec key, where the key is not ``<command>.<parameter>``.
RENAMED = {
    ("select", "expand"): "select.classes[].expand",
    ("select", "exclude"): "select.exclude_images_with",
    ("select", "box_flag"): "select.box_flags",
    ("select", "metadata_base"): "endpoints.metadata_base",
    ("select", "catalog_url"): "select.catalog",
    ("download", "rate"): "download.rate_per_host",
    ("download", "timeout"): "download.total_timeout_s",
    ("download", "connect_timeout"): "download.connect_timeout_s",
    ("download", "read_timeout"): "download.read_timeout_s",
    ("download", "mirror"): "endpoints.mirror",
    ("download", "images_base"): "endpoints.images_base",
    ("download", "flickr_base"): "endpoints.flickr_base",
    ("download", "backend_name"): "download.backend",
    ("build", "min_crop"): "build.min_crop_side",
    ("build", "quality"): "build.jpeg_quality",
    ("build", "seed"): "build.split_seed",
    ("build", "near"): "build.near_duplicate_distance",
    ("build", "backend_name"): "build.backend",
    ("book", "allow_depictions"): "book.exclude_depictions",
    ("book", "spine"): "book.spine_in",
    ("book", "mirror"): "endpoints.mirror",
}
#: What a key means where no CLI option's help says it.
MEANING = {
    "name": "The dataset's name (card, lock, selection's spec hash).",
    "workdir": "`oiforge run`'s working folder, relative to the spec file "
    "(default: `./<spec file stem>`; `oiforge run --out` wins).",
    "select.classes[].name": "A class: display name or MID (a plain string is the same).",
    "select.classes[].exclude_subclasses": "Sub-trees to leave out when expanding.",
    "select.classes[].rename": "The class's name in the dataset (default: the display name).",
    "select.classes": "The classes to select: names/MIDs, or entries with the keys below.",
    "select.box_flags": "Per box flag (is_occluded, is_truncated, is_group_of, is_depiction, "
    "is_inside): keep such boxes, drop them, or keep only them.",
    "book.exclude_depictions": "Leave out drawings, toys and other depictions "
    "(`--allow-depictions` is its opposite).",
    "build.min_image_side": "Smallest source image side in px (smaller ones are excluded).",
    "build.shard_size": "Samples per WebDataset shard.",
    "build.max_pixels": "Largest source image in pixels (larger ones are decompression bombs).",
    "train.crop_pct": "Centre-crop fraction at evaluation (resize to size/crop_pct first).",
    "train.drop_rate": "Dropout before the classifier.",
    "train.min_delta": "Smallest improvement of the monitored metric that counts.",
    "train.val_fraction": "Share of train held out for validation when there is no val split.",
    "train.amp": "Mixed precision on CUDA.",
    "train.chosen": "Written by auto: its pick (a candidate's name, or `ensemble`).",
    "train.members": "Written by auto: the candidates its ensemble averages.",
    "train.trunk_blocks": "Written by auto: blocks of the frozen trunk its ensemble shares.",
    "book.bleed_in": "Bleed width in inches (with bleed).",
    "book.margin_in": "Page margin in inches.",
    "book.jpeg_quality": "JPEG quality of the printed photos.",
    "book.candidates_per_letter": "Photos planned per letter before rendering picks.",
    "book.min_photos": "Fewest photos a letter needs to get a page.",
    "export.tta": "Test-time augmentation inside the ONNX graph (serve gets it for free).",
}
_SECTIONS = (
    "select", "download", "build", "train", "evaluate", "export", "book", "present", "endpoints"
)  # fmt: skip


@dataclass(frozen=True)
class Key:
    """One row of the table."""

    key: str
    type: str
    default: str  # as the table shows it
    value: Any = None  # the default itself (None: none, or not a plain value)


def spec_keys() -> list[Key]:
    """Every key a spec file may have, in the order of docs/spec.md."""
    from oiforge.spec import BoxFlags, ClassSpec, DatasetSpec

    rows = [_row("name", DatasetSpec, "name"), _row("workdir", DatasetSpec, "workdir")]
    for section in _SECTIONS:
        rows += list(_section_rows(section))
        if section == "select":
            rows.append(Key("select.classes", "list of names or entries", "required"))
            rows += [_row(f"select.classes[].{n}", ClassSpec, n) for n in ClassSpec.model_fields]
            rule = _type(BoxFlags.model_fields["is_occluded"].annotation)
            flags = BoxFlags().model_dump()
            odd = ", ".join(f"{k}: {v}" for k, v in flags.items() if v != "keep")
            rows.append(Key("select.box_flags", f"mapping flag: {rule}", f"`{odd}`, others keep"))
    return rows


def _section_rows(section: str) -> Iterator[Key]:
    from oiforge.pipeline.settings import BOOK_SOURCES, DEFAULT_BOOK_SOURCES, TRAIN_DECIDED
    from oiforge.spec import DatasetSpec, PresentSpec

    if section == "train":
        from oiforge.train.config import TrainConfig

        for name in TrainConfig.model_fields:
            if name not in TRAIN_DECIDED:
                yield _row(f"train.{name}", TrainConfig, name)
        yield from (Key(f"train.{n}", "int", _show(0), 0) for n in ("gpus", "procs"))
    elif section == "book":
        yield from _book_rows()
        sources = list(DEFAULT_BOOK_SOURCES)
        yield Key(f"book.{BOOK_SOURCES}", "list of sources", _show(sources), sources)
    else:
        model = PresentSpec if section == "present" else _annotation_model(DatasetSpec, section)
        skip = {"classes", "box_flags"} if section == "select" else set()
        for name in model.model_fields:
            if name not in skip:
                yield _row(f"{section}.{name}", model, name)


def _book_rows() -> Iterator[Key]:
    from oiforge.book import LayoutOptions, SelectOptions, setting_keys

    extra = {"pick": "mapping letter: class", "custom": "mapping name: folder",
             "overrides": "path"}  # fmt: skip
    for name in setting_keys():
        model = LayoutOptions if name in LayoutOptions.model_fields else SelectOptions
        if name in extra:
            yield Key(f"book.{name}", extra[name], "")
        else:
            yield _row(f"book.{name}", model, name)


def _annotation_model(model: type[BaseModel], name: str) -> type[BaseModel]:
    found = model.model_fields[name].annotation
    assert isinstance(found, type) and issubclass(found, BaseModel), name
    return found


def _row(key: str, model: type[BaseModel], name: str) -> Key:
    field = model.model_fields[name]
    if field.is_required():
        return Key(key, _type(field.annotation), "required")
    default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
    return Key(key, _type(field.annotation), _show(default), default)


def _type(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type(a) for a in args if a is not type(None)) + ", optional"
    if origin is tuple:
        return f"list of {_type(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _show(value: Any) -> str:
    if value is None or value in ({}, (), ""):
        return ""
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value) if not isinstance(value, str) else value}`"


def cli_options() -> dict[str, list[tuple[str, Any]]]:
    """Spec key -> the (command, click parameter) pairs that stand for it."""
    group = typer.main.get_command(app)
    out: dict[str, list[tuple[str, Any]]] = {}
    for command in COMMANDS:
        for param in group.commands[command].params:  # type: ignore[attr-defined]
            key = RENAMED.get((command, param.name), f"{command}.{param.name}")
            out.setdefault(key, []).append((command, param))
    return out


def _option(command: str, param: Any) -> str:
    names = param.opts if param.param_type_name == "option" else [param.name.upper()]
    return f"`{command} {names[0]}`"


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render() -> str:
    """docs/spec.md as Markdown."""
    options = cli_options()
    lines = [
        "# Spec file reference",
        "",
        "Generated from the code by `scripts/gen_spec_reference.py`; do not edit by hand.",
        "Every key of a spec YAML, the CLI option it stands for, and its default. `oiforge run",
        "SPEC` reads every section ([run.md](run.md)); `select --spec` and `build SPEC` read",
        "theirs. A key the spec does not know is an error that lists the valid keys of its",
        "section. Paths in a spec are relative to the spec file. Options with no key here are",
        "the ones `oiforge run` decides (input and output paths inside its working folder,",
        "`--resume`) or that make no sense in a spec (`build --lock`, `train --seeds`, multi-",
        "machine `train --nodes`); `tests/pipeline/test_spec_keys.py` lists them with reasons.",
        "",
        "| key | type | default | CLI option | meaning |",
        "|---|---|---|---|---|",
    ]
    for row in spec_keys():
        used = options.get(row.key, [])
        cli = ", ".join(_option(c, p) for c, p in used)
        helps = [p.help for _c, p in used if getattr(p, "help", None)]
        meaning = MEANING.get(row.key) or (helps[0] if helps else "")
        lines.append(
            f"| `{row.key}` | {_cell(row.type)} | {_cell(row.default)} | {cli} | {_cell(meaning)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
