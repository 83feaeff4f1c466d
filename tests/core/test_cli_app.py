"""The console script builds only the stage module a command needs; the table it uses must
list exactly what each stage module registers."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from oiforge.cli import COMMANDS, build_app


def _names(app: typer.Typer) -> set[str]:
    commands = {c.name for c in app.registered_commands}
    groups = {g.name for g in app.registered_groups}
    return {n for n in commands | groups if n}


def test_commands_table_matches_what_each_stage_module_registers() -> None:
    for module, names in COMMANDS.items():
        assert _names(build_app([module])) == set(names), module


def test_a_command_imports_only_its_own_stage_module() -> None:
    code = (
        "import sys; from oiforge.cli import app_for\n"
        "try:\n    app_for(['-v', 'download'])(['download', '--help'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('oiforge.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "['oiforge.cli._common', 'oiforge.cli.download']"
    assert "Fetch every selected image" in out.stdout


def test_the_whole_app_lists_every_command_and_rejects_unknown_ones() -> None:
    run = [sys.executable, "-c", "from oiforge.cli import main; main()"]
    listing = subprocess.run([*run, "--help"], capture_output=True, text=True, check=True).stdout
    for names in COMMANDS.values():
        for name in names:
            assert name == "train-worker" or f" {name} " in listing, name
    bad = subprocess.run([*run, "nonsense"], capture_output=True, text=True)
    assert bad.returncode == 2 and "No such command" in bad.stderr


def test_ctrl_c_in_a_command_exits_130_and_says_how_to_resume(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Typer turns a KeyboardInterrupt into a silent exit 130; the console script says what
    happened and what to do."""
    import oiforge.cli as cli

    app = typer.Typer()

    @app.command()
    def fetch() -> None:
        raise KeyboardInterrupt

    @app.command()
    def other() -> None:
        """A second command, so that Typer takes the command's name."""

    monkeypatch.setattr(cli, "app_for", lambda args: app)
    with pytest.raises(SystemExit) as done:
        cli.main(["fetch"])
    assert done.value.code == 130
    assert "interrupted (rerun the same command to resume)" in capsys.readouterr().err
