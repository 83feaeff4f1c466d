"""examples/hotdog.yaml ("X vs not X") runs up to the build against the mirror sample: the
``not Hot dog`` class holds only photos people verified as showing no hot dog, and the card
says where the negatives came from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

import oiforge
from oiforge.contracts import read_classes, read_manifest

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hotdog.yaml"
HOT_DOG = "/m/01b9xk"


def _verified(sample_root: Path) -> tuple[set[str], set[str]]:
    """Photos of the sample with a human-verified positive / negative Hot dog label."""
    pos, neg = set(), set()
    for path in (sample_root / "openimages" / "v7").glob("*human-imagelabels.csv"):
        for line in path.read_text().splitlines()[1:]:
            iid, _, mid, conf = line.split(",")[:4]
            if mid == HOT_DOG:
                (pos if conf.strip() == "1" else neg).add(iid)
    return pos, neg


def test_hot_dog_or_not_hot_dog(
    mirror: Any, sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OIFORGE_MIRROR", mirror.url)
    monkeypatch.chdir(tmp_path)
    shutil.copy(EXAMPLE, tmp_path / "hotdog.yaml")
    assert yaml.safe_load(EXAMPLE.read_text())["select"]["negatives"] == "verified"
    result = oiforge.run("hotdog.yaml", until="build")
    assert result.ran == ["select", "download", "build"]
    out = tmp_path / "hotdog" / "dataset"
    classes = read_classes(out)
    assert classes is not None
    assert [c.name for c in classes.classes] == ["Hot dog", "not Hot dog"]
    rows = read_manifest(out).to_pylist()
    pos, neg = _verified(sample_root)
    got = {name: {r["image_id"] for r in rows if r["class_name"] == name}
           for name in ("Hot dog", "not Hot dog")}  # fmt: skip
    assert got["Hot dog"] and got["Hot dog"] <= pos
    assert got["not Hot dog"] and got["not Hot dog"] <= neg - pos  # verified, never guessed
    assert all(r["label_mid"] == "" for r in rows if r["class_name"] == "not Hot dog")
    card = (out / "DATASET.md").read_text()
    assert "photos added as negatives: humans verified as not showing the classes" in card
    assert json.loads((out / "classes.json").read_text())[1]["folder"] == "not_Hot_dog"
