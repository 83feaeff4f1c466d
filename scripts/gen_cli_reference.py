"""Write docs/cli.md: every `oiforge` command with its arguments and options, from the code.

Run `python scripts/gen_cli_reference.py` after changing a command; a test fails when the file
is stale, so the reference never drifts from the CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer.main

from oiforge.cli import app

OUT = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _param_row(p: Any) -> str:
    names = ", ".join(f"`{o}`" for o in [*p.opts, *getattr(p, "secondary_opts", [])])
    if p.param_type_name == "argument":
        names = f"`{p.name.upper()}`" + ("" if p.required else " (optional)")
    default = p.default
    empty = default is None or default is False or default in ("", (), [])
    shown = "" if empty or callable(default) else f"`{default}`"
    if p.required and p.param_type_name == "option":
        shown = "required"
    return f"| {names} | {_cell(getattr(p, 'help', '') or '')} | {_cell(shown)} |"


def _command(path: str, cmd: Any, out: list[str]) -> None:
    subs = getattr(cmd, "commands", None)
    if path:
        out += [f"## `oiforge {path}`", "", _cell(cmd.help or ""), ""]
        params = [p for p in cmd.params if p.name not in ("help",)]
        if params and not subs:
            out += ["| argument / option | meaning | default |", "|---|---|---|"]
            out += [_param_row(p) for p in params]
            out.append("")
    for name, sub in (subs or {}).items():
        _command(f"{path} {name}".strip(), sub, out)


def render() -> str:
    """The reference as Markdown."""
    lines = [
        "# `oiforge` command reference",
        "",
        "Generated from the code by `scripts/gen_cli_reference.py`; do not edit by hand.",
        "Every command takes `--help`. Exit codes: 0 ok, 1 a failure, 2 a usage or input error.",
        "",
    ]
    _command("", typer.main.get_command(app), lines)
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        return 0 if OUT.exists() and OUT.read_text(encoding="utf-8") == text else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
