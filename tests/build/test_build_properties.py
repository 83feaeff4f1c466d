"""Property tests: crop geometry, duplicate grouping, splits, folder names."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from oiforge.build.assemble import assign_splits, duplicate_groups
from oiforge.build.plan import make_classes, safe_folder_name
from oiforge.build.records import Box
from oiforge.build.render import box_problem, crop_rect, output_size
from oiforge.contracts import DATASET_SPLITS

unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def boxes(draw: st.DrawFn) -> Box:
    x0, x1 = sorted((draw(unit), draw(unit)))
    y0, y1 = sorted((draw(unit), draw(unit)))
    return Box(x0, x1, y0, y1)


@given(boxes(), st.integers(1, 3000), st.integers(1, 3000), st.floats(0, 1),
       st.sampled_from(["keep", "square-pad", "square-crop"]))  # fmt: skip
def test_crop_rect_is_inside_the_image_and_holds_the_box(
    box: Box, w: int, h: int, pad: float, aspect: str
) -> None:
    x0, y0, x1, y1 = crop_rect(box, w, h, pad, aspect)
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    if box_problem(box) is None and aspect != "square-crop":
        assert x0 <= box.x_min * w + 1e-6 and x1 >= box.x_max * w - 1e-6
        assert y0 <= box.y_min * h + 1e-6 and y1 >= box.y_max * h - 1e-6
    if aspect == "square-crop" and min(w, h) > 1:
        assert abs((x1 - x0) - (y1 - y0)) <= 1
    ow, oh = output_size(x1 - x0, y1 - y0, 64, aspect)
    assert max(ow, oh) == 64 and min(ow, oh) >= 1


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=4, max_size=4))
def test_box_problem_never_raises(values: list[float]) -> None:
    box = Box(*values)
    problem = box_problem(box)
    if problem is None:
        assert box.x_max - box.x_min >= 0 and box.x_min > -0.01


def _brute_groups(hashes: dict[str, int], d: int) -> dict[str, set[str]]:
    ids = sorted(hashes)
    parent = {i: i for i in ids}

    def find(x: str) -> str:
        while parent[x] != x:
            x = parent[x]
        return x

    for a in ids:
        for b in ids:
            if a < b and (hashes[a] ^ hashes[b]).bit_count() <= d:
                parent[find(b)] = find(a)
    groups: dict[str, set[str]] = defaultdict(set)
    for i in ids:
        groups[find(i)].add(i)
    return {i: groups[find(i)] for i in ids}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 60), st.integers(0, 10))
def test_near_duplicate_groups_match_brute_force(seed: int, n: int, d: int) -> None:
    rng = random.Random(seed)
    hashes: dict[str, int] = {}
    for i in range(n):
        if hashes and rng.random() < 0.4:  # a planted near copy of an earlier hash
            h = rng.choice(list(hashes.values()))
            for bit in rng.sample(range(64), rng.randint(0, d + 1)):
                h ^= 1 << bit
        else:
            h = rng.getrandbits(64)
        hashes[f"{i:016x}"] = h
    groups = duplicate_groups(
        {i: f"sha{i}" for i in hashes}, {i: f"{h:016x}" for i, h in hashes.items()}, d
    )
    brute = _brute_groups(hashes, d)
    for i in hashes:
        assert {j for j in hashes if groups[j] == groups[i]} == brute[i]
        assert groups[i] == min(brute[i])


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text("abcdef0123456789", min_size=4, max_size=8),
        st.lists(st.sampled_from(["/m/a", "/m/b", "/m/c"]), min_size=1, max_size=4),
        min_size=1,
        max_size=120,
    ),
    st.integers(0, 5),
)
def test_splits_are_deterministic_and_stratified(groups: dict[str, list[str]], seed: int) -> None:
    fractions = (0.8, 0.1, 0.1)
    out = assign_splits(groups, fractions, seed)
    assert out == assign_splits(dict(reversed(list(groups.items()))), fractions, seed)
    assert set(out) == set(groups) and set(out.values()) <= set(DATASET_SPLITS)
    biggest = max(len(v) for v in groups.values())
    per_class: dict[str, Counter[str]] = defaultdict(Counter)
    for gid, labels in groups.items():
        primary = min(Counter(labels).items(), key=lambda kv: (-kv[1], kv[0]))[0]
        per_class[primary][out[gid]] += len(labels)
    for counts in per_class.values():
        total = sum(counts.values())
        for split, frac in zip(DATASET_SPLITS, fractions, strict=True):
            assert abs(counts[split] - frac * total) <= biggest + 1e-9


@given(st.dictionaries(st.text(min_size=1, max_size=6), st.text(max_size=30), max_size=12))
def test_folder_names_are_safe_and_unique(names: dict[str, str]) -> None:
    classes = make_classes(names)
    folders = [c.folder for c in classes]
    assert len({f.casefold() for f in folders}) == len(folders)
    assert [c.index for c in classes] == list(range(len(classes)))
    assert folders == sorted(folders)
    for f in folders:
        assert f and "/" not in f and "\\" not in f and not f.startswith(".")
        assert f == safe_folder_name(f) or "__" in f
