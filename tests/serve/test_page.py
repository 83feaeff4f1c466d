"""The web page at `/`, driven in real headless Chromium (Debian's) through playwright."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.serve import CLASSES, photo

DROP_JS = """async ([b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, {type: "image/jpeg"}));
  const zone = document.getElementById("drop");
  const init = {dataTransfer: dt, bubbles: true, cancelable: true};
  zone.dispatchEvent(new DragEvent("dragover", init));
  zone.dispatchEvent(new DragEvent("drop", init));
}"""


@pytest.mark.slow
@pytest.mark.browser
def test_drop_a_photo_and_see_top_k_bars(
    service: str, tmp_path: Path, chromium: Any, artifacts: Path
) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(photo(320, 240))
    page = chromium.new_page(viewport={"width": 900, "height": 640})
    page.goto(service + "/")
    page.wait_for_function("document.getElementById('model').textContent.includes('3 classes')")
    page.evaluate(DROP_JS, [base64.b64encode(image.read_bytes()).decode(), "dropped.jpg"])
    page.wait_for_selector("#bars .row")
    names = page.locator("#bars .label span:first-child").all_inner_texts()
    assert len(names) == 3 and set(names) == {n for n, _ in CLASSES}
    assert "dropped.jpg" in page.locator("#status").inner_text()
    page.screenshot(path=str(artifacts / "serve-page.png"), full_page=True)
    page.select_option("#topk", "3")
    page.set_input_files(
        "#file",
        files=[{"name": "notes.txt", "mimeType": "image/jpeg", "buffer": b"not an image"}],
    )
    page.wait_for_selector("#status.error")
    assert "not a decodable image" in page.locator("#status").inner_text()
    assert (artifacts / "serve-page.png").stat().st_size > 1000


def _watch(page: Any) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    local = ("http://127.0.0.1", "data:", "blob:")
    page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
    return errors, outside


@pytest.mark.slow
@pytest.mark.browser
def test_docs_render_offline_from_the_apps_own_assets(
    service: str, chromium: Any, artifacts: Path
) -> None:
    page = chromium.new_page(viewport={"width": 1100, "height": 900})
    errors, outside = _watch(page)
    page.goto(service + "/docs")
    page.wait_for_selector(".swagger-ui .opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/v1/predict" in paths and "/v1/model" in paths
    page.screenshot(path=str(artifacts / "serve-docs.png"))
    assert errors == [] and outside == []


@pytest.mark.slow
@pytest.mark.browser
def test_page_fits_a_phone_and_names_the_model(service: str, chromium: Any) -> None:
    page = chromium.new_page(viewport={"width": 375, "height": 740})
    errors, outside = _watch(page)
    page.goto(service + "/")
    page.wait_for_function("document.getElementById('model').textContent.includes('classes')")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert not page.locator("#model").inner_text().startswith("run ")
    assert errors == [] and outside == []
