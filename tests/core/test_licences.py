"""Licence names for people: CC URLs named, anything else shortened, never a raw long URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oiforge.licences import licence_name

ROOT = Path(__file__).resolve().parents[2]
#: shared/ sits beside the checkout (or beside the worktrees' folder) on development machines
REAL_ROWS = [p / "shared/data/openimages/real_attribution_rows.json" for p in ROOT.parents[:2]]


def test_creative_commons_urls_are_named() -> None:
    cases = {
        "https://creativecommons.org/licenses/by/2.0/": "CC BY 2.0",
        "http://creativecommons.org/licenses/by-sa/2.0/": "CC BY-SA 2.0",
        "https://creativecommons.org/licenses/by-nc-nd/4.0/legalcode": "CC BY-NC-ND 4.0",
        "https://creativecommons.org/publicdomain/zero/1.0/": "CC0 1.0",
        "https://creativecommons.org/publicdomain/mark/1.0/": "Public domain 1.0",
        "": "licence unknown",
        None: "licence unknown",
        "https://www.flickr.com/commons/usage/": "flickr.com/commons/usage",
    }
    for url, name in cases.items():
        assert licence_name(url) == name, url


def test_the_real_rows_all_read_cc_by_2() -> None:
    found = [p for p in REAL_ROWS if p.is_file()]
    if not found:
        pytest.skip("no shared/data beside this checkout")
    rows = json.loads(found[0].read_text())
    assert {licence_name(r[1]) for r in rows.values()} == {"CC BY 2.0"}


@given(st.text(max_size=400))
def test_any_text_gives_a_short_single_line(text: str) -> None:
    name = licence_name(text, limit=60)
    assert 0 < len(name) <= 60 and "\n" not in name
