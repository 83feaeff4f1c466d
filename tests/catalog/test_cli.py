"""The catalog commands through typer's CliRunner (real catalog, mirror for fetch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.helpers.catalog import image_row, write_tables
from typer.testing import CliRunner

from oiforge.cli import app
from oiforge.contracts import SELECTION_SCHEMA, SPLITS
from oiforge.paths import package_data

runner = CliRunner()


def run(*args: str) -> object:
    return runner.invoke(app, list(args), terminal_width=160)


def test_classes_search_and_alias() -> None:
    res = run("classes", "airplane", "--limit", "5")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "/m/0cmf2" in res.output and "Fixed-wing aircraft" in res.output  # type: ignore[attr-defined]
    boxable = run("classes", "bear", "--boxable", "--version", "v6")
    assert "Polar bear" in boxable.output and "Bearded Seal" not in boxable.output  # type: ignore[attr-defined]


def test_unknown_class_exits_2_with_suggestions() -> None:
    res = run("select", "Hambrger", "--no-fetch")
    assert res.exit_code == 2  # type: ignore[attr-defined]
    assert "Hamburger" in res.output  # type: ignore[attr-defined]
    amb = run("select", "Ball", "--version", "v6", "--no-fetch")
    assert amb.exit_code == 2 and "/m/018xm" in amb.output  # type: ignore[attr-defined]


def test_tree_with_parts_and_depth() -> None:
    res = run("tree", "Person", "--parts", "--depth", "2")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "Human body" in res.output and "(part)" in res.output  # type: ignore[attr-defined]
    assert "Human face" in res.output  # type: ignore[attr-defined]
    shallow = run("tree", "Animal", "--depth", "1")
    assert "Mammal" in shallow.output and "Carnivore" not in shallow.output  # type: ignore[attr-defined]


def test_select_writes_selection_and_prints_counts(tmp_path: Path) -> None:
    home = Path(os.environ["OIFORGE_HOME"])
    ids = [f"{i:016x}" for i in range(1, 7)]
    tables = {
        "images": {s: [image_row(i, s) for i in ids[n::3]] for n, s in enumerate(SPLITS)},
        "human_labels": {
            s: [[i, "verification", "/m/01yrx", "1"] for i in ids[n::3]]
            for n, s in enumerate(SPLITS)
        },
    }
    write_tables(home, "v7", tables)
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: cats\nclasses: [Cat]\nsplits: [train, test]\n")
    out = tmp_path / "selection.parquet"
    res = run("select", "--spec", str(spec), "--out", str(out), "--no-fetch")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "Cat" in res.output and "wrote 4 rows" in res.output  # type: ignore[attr-defined]
    lines = res.output.splitlines()  # type: ignore[attr-defined]
    # not a terminal: plain columns, a line a class (no box, nothing wrapped)
    heads = ["class", *(f"{s} rows (images)" for s in SPLITS), "total rows"]
    assert lines[0].split() == " ".join(heads).split()
    assert lines[1].split() == ["Cat", "2", "(2)", "0", "(0)", "2", "(2)", "4"]
    table = pq.read_table(out)
    assert table.schema == SELECTION_SCHEMA
    assert set(table.column("split").to_pylist()) == {"train", "test"}
    flags = run("select", "Cat", "--per-class", "1", "--out", str(out), "--no-fetch")
    assert flags.exit_code == 0 and pq.read_table(out).num_rows == 1  # type: ignore[attr-defined]
    bad = run("select", "Cat", "--box-flag", "is_group_of", "--no-fetch")
    assert bad.exit_code == 2  # type: ignore[attr-defined]


def test_select_multi_label_and_negatives_flags(tmp_path: Path) -> None:
    home = Path(os.environ["OIFORGE_HOME"])
    ids = [f"{i:016x}" for i in range(1, 9)]
    rows = [[i, "verification", "/m/0cdn1", "1"] for i in ids[:4]]  # hamburgers
    rows += [[i, "verification", "/m/0cdn1", "0"] for i in ids[4:6]]  # verified not
    rows += [[ids[0], "verification", "/m/01b9xk", "0"]]  # not a hot dog
    write_tables(
        home,
        "v7",
        {
            "images": {"train": [image_row(i, "train") for i in ids]},
            "human_labels": {"train": rows},
        },
    )
    out = tmp_path / "selection.parquet"
    args = ["select", "Hamburger", "Hot dog", "Sandwich", "--multi-label", "multi"]
    res = run(*args, "--expand-up", "--splits", "train", "--out", str(out), "--no-fetch")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "negative" in res.output  # type: ignore[attr-defined]
    got = {(r["label_name"], r["role"]) for r in pq.read_table(out).to_pylist()}
    assert got == {("Hamburger", "positive"), ("Sandwich", "positive"), ("Hot dog", "negative")}
    neg = ["select", "Hamburger", "--splits", "train", "--negatives", "verified", "--no-fetch"]
    short = run(*neg, "--out", str(out))
    assert short.exit_code == 2  # type: ignore[attr-defined]
    assert "train 2 of 4 wanted" in " ".join(short.output.split())  # type: ignore[attr-defined]
    assert "Traceback" not in short.output  # type: ignore[attr-defined]
    ok = run(*neg, "--negatives-ratio", "0.5", "--negatives-class", "no burger", "-o", str(out))
    assert ok.exit_code == 0, ok.output  # type: ignore[attr-defined]
    names = pq.read_table(out).column("label_name").to_pylist()
    assert names.count("no burger") == 2 and names.count("Hamburger") == 4


@pytest.mark.slow
def test_catalog_fetch_from_the_mirror(mirror: object) -> None:
    base = f"{mirror.url}/openimages"  # type: ignore[attr-defined]
    res = run(
        "catalog", "fetch", "--kinds", "boxes", "--splits", "validation", "--metadata-base", base
    )
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "fetched" in res.output  # type: ignore[attr-defined]
    cached = Path(os.environ["OIFORGE_HOME"]) / "metadata" / "v5/validation-annotations-bbox.csv"
    assert cached.exists()
    assert list((Path(os.environ["OIFORGE_HOME"]) / "parquet").rglob("*.parquet"))
    dead = run("catalog", "fetch", "--kinds", "boxes", "--metadata-base", f"{base}/nowhere")
    assert dead.exit_code == 1 and "failed" in dead.output  # type: ignore[attr-defined]


def test_select_process_ends_with_its_output_and_exit_code(tmp_path: Path) -> None:
    """``oiforge select`` as a process skips the interpreter's teardown (``exiting``): what
    it printed, its file and its exit status are all there, on success and on a bad class."""
    home = Path(os.environ["OIFORGE_HOME"])
    ids = [f"{i:016x}" for i in range(1, 4)]
    write_tables(
        home,
        "v7",
        {
            "images": {"train": [image_row(i, "train") for i in ids]},
            "human_labels": {"train": [[i, "verification", "/m/01yrx", "1"] for i in ids]},
        },
    )
    cli = [sys.executable, "-c", "from oiforge.cli import main; main()", "select"]
    out = tmp_path / "selection.parquet"
    done = subprocess.run(
        [*cli, "Cat", "--splits", "train", "--out", str(out), "--no-fetch"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote 3 rows to {out}" in " ".join(done.stdout.split())
    assert "train rows" in done.stdout and "3 (3)" in done.stdout  # its table
    assert done.stderr == ""  # no spinner drawn into a pipe
    assert pq.read_table(out).num_rows == 3
    bad = subprocess.run([*cli, "Hambrger", "--no-fetch"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Hamburger" in bad.stderr


def _longest_names(n: int) -> list[str]:
    """The ``n`` longest real v7 class names."""
    text = package_data("openimages", "oidv7-class-descriptions.csv").read_text(encoding="utf-8")
    names = [line.split(",", 1)[1].strip('"') for line in text.splitlines()[1:] if "," in line]
    return sorted(names, key=len, reverse=True)[:n]


def test_counts_table_keeps_long_class_names_whole_off_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from rich.console import Console

    from oiforge.cli import _common

    names = _longest_names(3)
    rows = [[n, f"{k * 1234:,} ({k * 1000:,})", f"{k:,}"] for k, n in enumerate(names, 1)]
    log = Console(file=io.StringIO(), width=80)  # a pipe: Rich would squeeze it into 80
    monkeypatch.setattr(_common, "console", log)
    _common.print_table(["class", "train rows (images)", "total rows"], rows)
    lines = log.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 4 and max(map(len, lines)) > 80
    for line, row in zip(lines[1:], rows, strict=True):
        assert line.startswith(row[0] + " ") and line.endswith("  " + row[2])
    assert len({len(line) for line in lines}) == 1  # counts right-aligned in one column
    term = Console(file=io.StringIO(), width=200, force_terminal=True)
    monkeypatch.setattr(_common, "console", term)
    _common.print_table(["class", "train rows (images)", "total rows"], rows)
    drawn = term.file.getvalue()  # type: ignore[attr-defined]
    assert "┃" in drawn and all(n in drawn for n in names)
