"""The contact sheet in real headless Chromium: one tile per sample with its ImageID and
flags, flagged samples first and marked, at a phone's width without horizontal scroll."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from oiforge.build.synthetic import SyntheticSet

from .conftest import BuildFn


@pytest.mark.slow
@pytest.mark.browser
def test_contact_sheet_tiles_flags_and_narrow_width(
    synth: SyntheticSet, build: BuildFn, tmp_path: Path, chromium: Any, artifacts: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(synth.store, store)
    gray = sorted(store.rglob("*.jpg"))[0]
    Image.open(gray).convert("L").convert("RGB").save(gray, quality=90)
    result = build(SyntheticSet(store, synth.selection, synth.image_ids), size=64)
    sheet = result.out / "contact_sheet.html"
    assert sorted(p.name for p in (result.out / "review").iterdir())[0] == "0000.jpg"
    page = chromium.new_page(viewport={"width": 375, "height": 740})
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith("file://") else outside.append(r.url))
    page.goto(sheet.as_uri())
    tiles = page.locator("figure.tile")
    assert tiles.count() == result.samples
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    flagged = page.locator("figure.tile.flagged")
    assert flagged.count() >= 1 and gray.stem in flagged.first.inner_text()
    assert "grayscale" in flagged.first.inner_text()
    first_tiles = page.locator("h2 + .tiles > figure:first-child.flagged")
    assert first_tiles.count() >= 1  # flagged come first in their class
    sizes = page.evaluate(
        "[...document.querySelectorAll('.thumb')].map(t => t.offsetWidth * t.offsetHeight)"
    )
    assert min(sizes) > 0 and outside == []
    page.set_viewport_size({"width": 1100, "height": 900})
    page.screenshot(path=str(artifacts / "contact-sheet.png"))
