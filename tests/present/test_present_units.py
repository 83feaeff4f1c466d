"""The deck's parts on their own: Markdown round trip, intervals, fits, subsets, assets."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oiforge.errors import InvalidInputError, MalformedFileError
from oiforge.present.facts import SampleRow
from oiforge.present.figures import power_fit, wilson
from oiforge.present.measure import pick_subset
from oiforge.present.model import (
    COLUMN_BREAK,
    LAYOUTS,
    Deck,
    Slide,
    fact,
    inline_assets,
    parse_markdown,
    render_markdown,
)

_line = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(lambda t: t and not t.startswith(("<!--", "#", "---")))
)
_block = st.lists(_line, min_size=0, max_size=4).map("\n".join)
_slide = st.builds(
    Slide,
    id=st.from_regex(r"[a-z0-9][a-z0-9-]{0,12}", fullmatch=True),
    title=_line,
    body=st.lists(_block, max_size=3).map(
        lambda cols: f"\n\n{COLUMN_BREAK}\n\n".join(cols).strip()
    ),
    notes=_block,
    sources=st.lists(_line.filter(lambda t: "|" not in t), max_size=3).map(tuple),
    layout=st.sampled_from(LAYOUTS),
)


_meta = st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), _line, max_size=3)


@settings(max_examples=60, deadline=None)
@given(title=_line, slides=st.lists(_slide, min_size=1, max_size=4), meta=_meta)
def test_markdown_round_trips_any_deck(
    title: str, slides: list[Slide], meta: dict[str, str]
) -> None:
    deck = Deck(title, tuple(slides), meta)
    assert parse_markdown(render_markdown(deck)) == deck


def test_markdown_errors_name_the_line() -> None:
    with pytest.raises(MalformedFileError, match=r"deck.md:1"):
        parse_markdown("no front matter", "deck.md")
    with pytest.raises(MalformedFileError, match=r"unknown layout"):
        parse_markdown('---\ntitle: t\n---\n<!-- slide id="a" layout="wide" -->\n## A\n')


@given(n=st.integers(1, 5000), data=st.data())
def test_wilson_interval_holds_the_proportion(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    low, high = wilson(k, n) or (math.nan, math.nan)
    assert 0.0 <= low <= k / n <= high <= 1.0
    if n % 4 == 0 and k % 4 == 0:  # the same proportion from a quarter of the photos: wider
        fewer = wilson(k // 4, n // 4)
        assert fewer is not None and fewer[1] - fewer[0] >= high - low - 1e-12


def test_power_fit_recovers_a_power_law() -> None:
    points = [(n, 2.0 * n**-0.5) for n in (10, 40, 160)]
    fit = power_fit(points, floor=1e-6)
    assert fit is not None
    assert fit.a == pytest.approx(2.0) and fit.b == pytest.approx(0.5)
    assert fit.images_for(0.1) == pytest.approx(400.0)
    assert power_fit([(10, 0.5), (10, 0.4)], floor=0.01) is None


def _rows(classes: int, photos: int, crops: int) -> list[SampleRow]:
    blank = dict.fromkeys(("sample_path", "wds_shard", "license", "author", "title"), "")
    return [
        SampleRow(
            image_id=f"{c:02d}{p:014x}",
            key=f"{c:02d}{p:014x}_{b}",
            split="train",
            class_name=f"c{c}",
            class_folder=f"c{c}",
            landing_url="",
            flags="",
            **blank,
        )
        for c in range(classes)
        for p in range(photos)
        for b in range(crops)
    ]


@given(classes=st.integers(1, 4), photos=st.integers(1, 9), crops=st.integers(1, 3),
       fraction=st.sampled_from([0.25, 0.5]), seed=st.integers(0, 3))  # fmt: skip
def test_subsets_keep_whole_photos_and_every_class(
    classes: int, photos: int, crops: int, fraction: float, seed: int
) -> None:
    rows = _rows(classes, photos, crops)
    chosen = pick_subset(rows, fraction, seed)
    assert chosen == pick_subset(rows, fraction, seed)
    per_photo: dict[str, int] = {}
    for row in chosen:
        per_photo[row.image_id] = per_photo.get(row.image_id, 0) + 1
    assert set(per_photo.values()) == {crops}
    assert {r.class_name for r in chosen} == {r.class_name for r in rows}
    assert len(per_photo) == classes * max(1, round(fraction * photos))


def test_assets_outside_the_assets_folder_are_refused(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "secret.png").write_bytes(b"\x89PNG")
    with pytest.raises(InvalidInputError, match="not in"):
        inline_assets('<img src="assets/../secret.png">', tmp_path / "assets")


def test_a_fact_keeps_the_exact_value() -> None:
    html = fact("metrics.accuracy", 0.1 + 0.2, "30%")
    assert 'data-value="0.30000000000000004"' in html and ">30%<" in html


def test_serve_capacity_comes_from_bench_serve_json_when_there(tmp_path: Path) -> None:
    import json

    from oiforge.present.facts import read_serve_bench

    path = tmp_path / "bench_serve.json"
    assert read_serve_bench(path) is None
    cpu = [{"metric": f"HTTP {r} rps: server CPU per request", "value": v, "unit": "ms"}
           for r, v in ((10, 41.0), (50, 33.5))]  # fmt: skip
    served = {"metric": "HTTP 50 rps: p99 latency", "value": 900.0, "unit": "ms",
              "extra": {"ok_rps": 46.0}}  # fmt: skip
    record = {"date": "2026-12-06T00:00:00Z", "machine": {"cores": 2}, "rows": [served, *cpu]}
    path.write_text(json.dumps(record))
    ms, what = read_serve_bench(path) or (0.0, "")
    assert ms == 41.0 and "HTTP 10 rps: server CPU per request" in what
    path.write_text(json.dumps({**record, "rows": [served]}))
    ms, what = read_serve_bench(path) or (0.0, "")
    assert ms == 1000.0 * 2 / 46.0 and "46.0 requests/s served on 2 cores" in what


def test_plurals_read_as_english() -> None:
    from oiforge.present.model import plural

    assert [plural(1, "pass"), plural(20, "pass"), plural(2, "photo"), plural(3, "box")] == [
        "1 pass", "20 passes", "2 photos", "3 boxes",
    ]  # fmt: skip
