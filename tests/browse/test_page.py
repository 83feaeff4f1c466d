"""The browse page in real headless Chromium (Debian's) through playwright: the grid, the class
tree, URL state and history, the detail view, bulk exclusion → build, review → select."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from oiforge.build import read_exclude_list
from oiforge.cli import app
from oiforge.reviews import REVIEWED_SOURCE, read_reviews

from .conftest import BEAR, CARNIVORE, Browse

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture()
def page(chromium: Any) -> Iterator[Any]:
    """A page that records console errors and every request that leaves 127.0.0.1."""
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    page.errors, page.outside = [], []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on(
        "request",
        lambda r: (
            None if r.url.startswith(("http://127.0.0.1", "data:")) else page.outside.append(r.url)
        ),
    )
    yield page
    assert page.errors == [] and page.outside == []
    page.close()


def _ratio(page: Any, image_id: str) -> float:
    box = page.locator(f".tile[data-id='{image_id}'] .pic").bounding_box()
    return float(box["width"] / box["height"])


def _total(page: Any) -> str:
    return str(page.locator("#count").inner_text())


def test_grid_tree_url_history_and_detail(browse: Browse, page: Any, artifacts: Path) -> None:
    page.goto(browse.url + "/")
    page.wait_for_selector(".tile .box")
    wide, tall = browse.image_ids[0], browse.image_ids[1]  # stored 512×288 and 300×400
    assert abs(_ratio(page, wide) - 512 / 288) < 0.03 and abs(_ratio(page, tall) - 0.75) < 0.03
    assert (
        page.locator(f".tile[data-id='{browse.failed}'] .missing")
        .inner_text()
        .startswith("download failed: http_404")
    )
    page.screenshot(path=str(artifacts / "browse-grid.png"))
    page.fill("#find", "carnivore")
    page.click("#hits li[data-mid='/m/01lrl']")
    page.wait_for_function(f"location.search.includes('cls={CARNIVORE.replace('/', '%2F')}')")
    page.wait_for_selector("#chips button")
    assert _total(page).endswith(f"of {len(browse.image_ids)} images")  # all descendants
    page.click(f"#tree li[data-mid='{BEAR}']")
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 1")
    assert page.locator("#grid .tile .cap .chip").first.inner_text() == "Bear"
    page.go_back()
    page.wait_for_function(
        f"document.querySelectorAll('#grid .tile').length === {len(browse.image_ids)}"
    )
    page.go_forward()
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 1")
    page.goto(browse.url + "/?split=validation&boxes=0")
    page.wait_for_selector("body.hide-boxes #grid .tile")
    assert page.locator("#f-split").input_value() == "validation"
    assert page.locator("#grid .tile .box").first.is_hidden()
    page.goto(browse.url + "/")
    page.wait_for_selector("#grid .tile")
    page.locator("#grid .tile").first.click()
    page.wait_for_function(f"location.search.includes('img={wide}')")
    page.wait_for_selector("#detail:not([hidden]) #d-pic img")
    assert page.locator("#d-body").inner_text().count("CC BY 2.0") == 1
    page.screenshot(path=str(artifacts / "browse-detail.png"))
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"location.search.includes('img={tall}')")
    page.keyboard.press("Escape")
    page.wait_for_selector("#detail", state="hidden")
    page.reload()
    page.wait_for_selector("#grid .tile")
    assert page.locator("#detail").is_hidden()


def test_narrow_viewport_has_no_horizontal_scroll(browse: Browse, page: Any) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    for path in ("/", f"/?img={browse.image_ids[0]}", f"/?cls={CARNIVORE}"):
        page.goto(browse.url + path)
        page.wait_for_selector("#grid .tile")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, path
    page.click("#menu")
    page.wait_for_selector("#side", state="visible")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def test_bulk_exclude_undo_then_build_drops_exactly_those(
    browse: Browse, page: Any, tmp_path: Path
) -> None:
    page.goto(browse.url + "/")
    page.wait_for_selector("#grid .tile")
    ids = browse.image_ids
    page.locator(f".tile[data-id='{ids[0]}'] .pick").click()
    page.locator(f".tile[data-id='{ids[2]}'] .pick").click(modifiers=["Shift"])
    assert page.locator("#picked").inner_text() == "3 selected"
    page.fill("#reason", "blurry, too dark")
    page.click("#exclude")
    page.wait_for_selector(f".tile.excluded[data-id='{ids[2]}']")
    assert set(read_exclude_list(browse.exclude_list).images) == set(ids[:3])
    page.keyboard.press("u")
    page.wait_for_selector(f".tile[data-id='{ids[0]}']:not(.excluded)")
    assert read_exclude_list(browse.exclude_list).images == {}
    page.click("#all")
    page.locator(f".tile[data-id='{ids[0]}'] .pick").click()  # all but the first
    page.click("#exclude")
    page.wait_for_selector(f".tile.excluded[data-id='{ids[1]}']")
    excluded = read_exclude_list(browse.exclude_list).images
    assert set(excluded) == set(ids[1:]) and set(excluded.values()) == {"blurry,too dark"}
    out = tmp_path / "dataset"
    where = ["--selection", str(browse.selection), "--store", str(browse.store), "--out", str(out)]
    ex = ["--exclude-list", str(browse.exclude_list), "--workers", "1"]
    res = CliRunner().invoke(app, ["build", *where, *ex])
    assert res.exit_code == 0, res.output
    kept = set(pq.read_table(out / "manifest.parquet").column("image_id").to_pylist())
    assert kept == {ids[0]}
    dropped = pq.read_table(out / "excluded.parquet").to_pylist()
    assert {r["image_id"] for r in dropped if "exclude_list" in r["reason"]} == set(ids[1:])


def test_review_mode_keys_then_select_honours_the_file(
    make_browse: Callable[[str], Browse],
    page: Any,
    monkeypatch: pytest.MonkeyPatch,
    artifacts: Path,
) -> None:
    b = make_browse("image")
    page.goto(b.url + "/")
    page.wait_for_selector("#grid .tile")
    page.check("#review")
    page.wait_for_function("location.search.includes('rv=unreviewed')")
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 3")
    page.screenshot(path=str(artifacts / "browse-review.png"))
    first = page.locator("#grid .tile").first.get_attribute("data-id")
    page.locator("body").press("r")
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 2")
    second = page.locator("#grid .tile").first.get_attribute("data-id")
    page.locator("body").press("c")
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 1")
    verdicts = {k[0]: v[0] for k, v in read_reviews(b.review_file).items()}
    assert verdicts == {first: "rejected", second: "confirmed"}
    monkeypatch.setenv("OIFORGE_HOME", str(b.home))
    out = b.selection.with_name("reviewed.parquet")
    args = ["select", "Cat", "Dog", "--min-confidence", "0.3", "--multi-label", "multi"]
    res = CliRunner().invoke(
        app, [*args, "--review", str(b.review_file), "-o", str(out), "--no-fetch"]
    )
    assert res.exit_code == 0, res.output
    before = pq.read_table(b.selection).to_pylist()
    after = pq.read_table(out).to_pylist()
    assert len(after) == len(before) - 1 and first not in {r["image_id"] for r in after}
    assert {r["source"] for r in after if r["image_id"] == second} == {REVIEWED_SOURCE}
