"""report.html in real headless Chromium: no overflow at a phone's width, readable licence
names, no empty header row, nothing fetched from anywhere."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from oiforge.evaluate.gallery import Mistake
from oiforge.evaluate.report import render_report

LONG_URL = "https://example.org/licences/" + "very-long-licence-name-" * 8 + "v1/"


def _thumb(w: int, h: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 120, 40)).save(buf, "JPEG")
    return base64.b64encode(buf.getvalue()).decode()


def _report() -> str:
    score = {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    metrics: dict[str, Any] = {
        "samples": 24, "accuracy": 0.5, "top_k": {"1": 0.5, "3": 0.9}, "macro": score,
        "weighted": score, "ece": 0.1,
        "per_class": [{"name": n, **score, "support": 8} for n in ("Cat", "Dog", "Bird")],
    }  # fmt: skip
    mistakes = [
        Mistake(f"test/Cat/{i:016x}.jpg", "Cat", "Dog", 0.9, _thumb(160, 90), {
            "title": "a photo " * 12, "author": f"Author {i}",
            "license": LONG_URL if i % 2 else "https://creativecommons.org/licenses/by/2.0/",
            "landing_url": f"https://www.flickr.com/photos/x/{i}",
        })
        for i in range(6)
    ]  # fmt: skip
    facts = {"run": "/a/very/long/path/" * 8, "model": "efficientnet_lite0", "images": 24}
    return render_report("oiforge evaluation: run", facts, metrics, {}, mistakes)


@pytest.mark.slow
@pytest.mark.browser
def test_report_fits_a_phone_and_names_licences(
    tmp_path: Path, chromium: Any, artifacts: Path
) -> None:
    path = tmp_path / "report.html"
    path.write_text(_report())
    page = chromium.new_page(viewport={"width": 375, "height": 740})
    outside: list[str] = []
    page.on(
        "request", lambda r: None if r.url.startswith(("file:", "data:")) else outside.append(r.url)
    )
    page.goto(path.as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    over = page.evaluate(
        "[...document.querySelectorAll('figure')].filter(f => f.scrollWidth > f.clientWidth).length"
    )
    assert over == 0
    assert page.locator("th:empty").count() == 0
    assert page.locator("figure").first.inner_text().count("CC BY 2.0") == 1
    assert outside == []
    page.set_viewport_size({"width": 1100, "height": 900})
    page.screenshot(path=str(artifacts / "report.png"), full_page=True)
