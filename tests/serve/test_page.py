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
