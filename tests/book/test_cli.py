"""`oiforge book` end to end over the mirror: plan, download, render, regenerate."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.book.helpers import make_photo_file, pdffonts, pdfinfo, require_poppler
from typer.testing import CliRunner

from oiforge.cli import app

runner = CliRunner()
pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "book"


def _run(*args: str) -> Any:
    return runner.invoke(app, list(args), terminal_width=120)


def test_book_end_to_end_and_byte_identical_regeneration(
    mirror: Any, sample_root: Path, tmp_path: Path
) -> None:
    require_poppler()
    family = tmp_path / "family"
    for k in range(4):
        make_photo_file(family / f"photo{k}.jpg", 500 + k, (900, 700))
    out = tmp_path / "book"
    result = _run(
        "book", "--out", str(out), "--mirror", mirror.url, "--title", "Baby's First Photos",
        "--bleed", "--max-photos", "4", "--skip", "Q", "--custom", f"Family={family}",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("download: "))
    assert " ok, failed: " in line and not set("{}'") & set(line), line  # words, not a dict
    for name in ("interior.pdf", "cover.pdf", "attribution.json", "book.json", "selection.parquet"):
        assert (out / name).is_file(), name
    info = pdfinfo(out / "interior.pdf")
    assert info["Page size"].startswith("630 x 630 pts") and int(info["Pages"]) % 2 == 0
    assert all(row[-5] == "yes" for row in pdffonts(out / "interior.pdf"))
    plan = json.loads((out / "book.json").read_text())
    family_page = next(e for e in plan["letters"] if e["letter"] == "F")
    assert family_page["class_name"] == "Family" and len(family_page["photos"]) == 4
    attribution = json.loads((out / "attribution.json").read_text())
    printed = {p["image_id"] for e in plan["letters"] for p in e["photos"]}
    assert {e["image_id"] for e in attribution["photos"]} == printed
    facts = json.loads((sample_root / "sample.json").read_text())
    person_mids = {c["mid"] for c in facts["classes"] if c["is_person"]}
    people = {i["image_id"] for i in facts["images"] if set(i["classes"]) & person_mids}
    assert not printed & people
    text = subprocess.run(["pdftotext", str(out / "interior.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    credits = "".join(text.split("Photo credits", 1)[1].split())
    for e in attribution["photos"]:  # real Flickr names and titles, read back as printed
        assert "".join(e["printed_title"].split()) in credits, e["printed_title"]
        assert "".join(e["printed_author"].split()) in credits, e["printed_author"]
    assert "\ufffd" not in text

    again = tmp_path / "again"
    result = _run("book", "render", str(out), "--out", str(again), "--store", str(out / "store"))
    assert result.exit_code == 0, result.output
    for name in ("interior.pdf", "cover.pdf", "attribution.json", "book.json"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    subprocess.run(
        ["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", str(out / "cover.pdf"),
         str(tmp_path / "cover")],
        check=True,
    )  # fmt: skip
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "cover-front.png").write_bytes(next(tmp_path.glob("cover*.png")).read_bytes())


def test_bad_input_exits_2_with_one_clear_line(mirror: Any, tmp_path: Path) -> None:
    out = str(tmp_path / "x")
    result = _run("book", "plan", "--out", out, "--mirror", mirror.url, "--pick", "A=Zebra")
    assert result.exit_code == 2 and "does not start with A" in result.output
    result = _run("book", "plan", "--out", out, "--mirror", mirror.url, "--pick", "A")
    assert result.exit_code == 2 and "LETTER=Class" in result.output
    result = _run("book", "plan", "--out", out, "--trim", "huge", "--mirror", mirror.url)
    assert result.exit_code == 2 and "trim size" in result.output
    result = _run("book", "check", str(tmp_path / "none.pdf"))
    assert result.exit_code == 2 and "no such file" in result.output
    result = _run("book", "render", str(tmp_path / "nothing"))
    assert result.exit_code == 1 and "book plan" in result.output
