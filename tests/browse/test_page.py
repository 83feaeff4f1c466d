"""The browse page in real headless Chromium (Debian's) through playwright."""

from __future__ import annotations

from pathlib import Path

import pytest

from oiforge.build import read_exclude_list

from .conftest import Browse

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.mark.slow
@pytest.mark.browser
def test_search_expand_exclude_reload(browse: Browse) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: run scripts/install-system-deps.sh")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(browse.url + "/")
            page.fill("#search", "carnivore")
            page.click("#hits li[data-mid='/m/01lrl']")
            page.wait_for_selector("#tree li[data-mid='/m/01dws']")  # Bear under Carnivore
            bear = page.locator("#tree li[data-mid='/m/01dws'] > .toggle")
            bear.click()
            page.wait_for_selector("#tree li[data-mid='/m/01dws'] li")
            page.select_option("#f-class", "Cat")
            page.wait_for_selector(".card .box")
            first = page.locator(".card").first
            image_id = first.get_attribute("data-id")
            assert image_id
            page.locator("body").click(position={"x": 5, "y": 5})
            page.keyboard.press("x")
            page.wait_for_selector(f".card.excluded[data-id='{image_id}']")
            page.screenshot(path=str(ARTIFACTS / "browse-excluded.png"), full_page=True)
            page.reload()
            page.wait_for_selector(f".card.excluded[data-id='{image_id}']")
            assert image_id in read_exclude_list(browse.exclude_list).images
            page.keyboard.press("u")
            page.wait_for_selector(f".card[data-id='{image_id}']:not(.excluded)")
        finally:
            browser.close()
    assert image_id not in read_exclude_list(browse.exclude_list).images
    assert (ARTIFACTS / "browse-excluded.png").stat().st_size > 1000
