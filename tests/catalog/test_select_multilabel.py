"""select in multi-label mode (verified negatives, expand-up, machine labels) and with added
negatives ("X vs not X"): examples, and a hypothesis property test against a plain-Python
reference of the whole image-mode selection."""

from __future__ import annotations

import hashlib
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.helpers.catalog import image_row, write_tables

from oiforge.catalog import open_catalog, select
from oiforge.catalog.catalog import Catalog
from oiforge.catalog.select import expand_classes, resolve_targets, select_plain
from oiforge.contracts import SPLITS, selection_labels
from oiforge.errors import NotEnoughNegativesError, SpecError
from oiforge.spec import SelectSpec, parse_spec

CAT, DOG, PERSON, BEAR, PANDA = "/m/01yrx", "/m/0bt9lr", "/m/01g317", "/m/01dws", "/m/03bj1"
BURGER, SANDWICH, SUB, FOOD = "/m/0cdn1", "/m/0l515", "/m/06pcq", "/m/02wbm"
MIDS = (CAT, DOG, PERSON, BEAR, PANDA, BURGER, SANDWICH, SUB, FOOD)

# an image: (split, [(mid, human Confidence or None, machine confidence or None)])
Label = tuple[str, int | None, float | None]
Image = tuple[str, list[Label]]
Row = tuple[Any, ...]


def image_id(n: int) -> str:
    return f"{(n + 1) * 2654435761 % 2**64:016x}"


def build(home: Path, images: Sequence[Image]) -> Catalog:
    kinds = ("images", "human_labels", "machine_labels")
    tables: dict[str, dict[str, list[list[str]]]] = {k: {s: [] for s in SPLITS} for k in kinds}
    for n, (split, labels) in enumerate(images):
        iid = image_id(n)
        tables["images"][split].append(image_row(iid, split))
        for mid, human, machine in labels:
            if human is not None:
                tables["human_labels"][split].append([iid, "verification", mid, str(human)])
            if machine is not None:
                tables["machine_labels"][split].append([iid, "machine", mid, str(machine)])
    write_tables(home, "v7", tables)
    return open_catalog("v7", home=home, fetch_missing=False)


def rows_of(table: Any) -> list[Row]:
    cols = ("image_id", "split", "label_mid", "label_name", "source", "confidence", "role")
    out = []
    for r in table.to_pylist():
        conf = r["confidence"]
        out.append(
            tuple(
                round(conf, 4) if c == "confidence" and conf is not None else r.get(c, "positive")
                for c in cols
            )
        )
    return out


@pytest.fixture()
def cat(tmp_path: Path) -> Catalog:
    images: list[Image] = [
        ("train", [(CAT, 1, None), (DOG, 0, None), (PERSON, 0, None)]),  # 0: cat, not a dog
        ("train", [(DOG, 1, None)]),  # 1: a dog; cat unknown
        ("train", [(CAT, 0, None), (FOOD, 1, None)]),  # 2: no cat, no dog: only a negative
        ("train", [(BURGER, 1, None), (SANDWICH, 0, None)]),  # 3: contradicts the hierarchy
        ("train", [(SANDWICH, 1, None), (BURGER, 0, None), (CAT, None, 0.9)]),  # 4
        ("validation", [(DOG, 1, None), (CAT, 0, 0.75)]),  # 5: machine label rejected
        ("validation", [(CAT, None, 0.75), (DOG, 0, None)]),  # 6: machine only
        ("test", [(CAT, 1, None), (SUB, 1, None)]),  # 7
        ("test", [(PANDA, 1, None)]),  # 8: a panda (a carnivore)
        ("test", [(CAT, 0, None)]),  # 9
        ("train", [(PERSON, 1, None)]),  # 10: only a person
    ]
    return build(tmp_path, images)


def test_multi_label_keeps_positives_and_verified_negatives(cat: Catalog) -> None:
    sel = select(SelectSpec(classes=("Cat", "Dog"), multi_label="multi"), catalog=cat)
    v = "verification"
    assert rows_of(sel.table) == [
        (image_id(0), "train", CAT, "Cat", v, 1.0, "positive"),
        (image_id(7), "test", CAT, "Cat", v, 1.0, "positive"),
        (image_id(5), "validation", CAT, "Cat", v, 0.0, "negative"),  # only selected images
        (image_id(1), "train", DOG, "Dog", v, 1.0, "positive"),
        (image_id(5), "validation", DOG, "Dog", v, 1.0, "positive"),
        (image_id(0), "train", DOG, "Dog", v, 0.0, "negative"),
    ]
    assert sel.image_counts["Cat"] == {"train": 1, "validation": 0, "test": 1}
    assert sel.negative_image_counts["Dog"] == {"train": 1, "validation": 0, "test": 0}
    assert selection_labels(sel.write(Path(tempfile.mkdtemp()) / "s.parquet")) == {
        "expand_up": False, "min_confidence": None, "multi_label": "multi",
        "negatives": "none", "negatives_class": None, "negatives_ratio": None,
    }  # fmt: skip


def test_machine_labels_stay_flagged_and_a_verification_overrides_them(cat: Catalog) -> None:
    spec = SelectSpec(classes=("Cat", "Dog"), multi_label="multi", min_confidence=0.5)
    rows = rows_of(select(spec, catalog=cat).table)
    cat_rows = {r[0]: r[4:] for r in rows if r[2] == CAT}
    assert cat_rows[image_id(4)] == ("machine", 0.9, "positive")  # unverified: machine source
    assert cat_rows[image_id(6)] == ("machine", 0.75, "positive")
    assert cat_rows[image_id(5)] == ("verification", 0.0, "negative")  # a human said no
    assert (image_id(6), "validation", DOG, "Dog", "verification", 0.0, "negative") in rows


def test_expand_up_credits_ancestors_and_negatives_go_down(cat: Catalog) -> None:
    spec = SelectSpec(classes=("Sandwich", "Hamburger", "Food"), multi_label="multi")
    plain = {(r[0], r[2]): r[6] for r in rows_of(select(spec, catalog=cat).table)}
    assert plain[(image_id(3), BURGER)] == "positive"
    assert plain[(image_id(3), SANDWICH)] == "negative"  # as verified
    assert (image_id(3), FOOD) not in plain  # unknown without expansion
    up = SelectSpec(classes=("Sandwich", "Hamburger", "Food"), multi_label="multi", expand_up=True)
    got = {(r[0], r[2]): r[6] for r in rows_of(select(up, catalog=cat).table)}
    assert got[(image_id(3), SANDWICH)] == "positive"  # a positive wins over a contradiction
    assert got[(image_id(3), FOOD)] == "positive"
    assert got[(image_id(4), BURGER)] == "negative"  # verified itself
    assert got[(image_id(7), SANDWICH)] == "positive"  # a submarine sandwich is a sandwich
    assert got[(image_id(2), FOOD)] == "positive"
    with pytest.raises(SpecError, match="expand_up needs multi_label"):
        parse_spec({"classes": ["Cat"], "expand_up": True})


@pytest.mark.slow
@pytest.mark.parametrize("expand_up", [False, True])
def test_select_finds_the_planted_answers_of_the_sample(
    mirror: Any, sample_root: Path, tmp_path: Path, expand_up: bool
) -> None:
    """The mirror sample's multi-label block (sample.json ``multilabel``): per photo its
    verified positives, negatives and unverified machine labels, and per class the counts."""
    import json

    from oiforge.endpoints import Endpoints

    facts = json.loads((sample_root / "sample.json").read_text())["multilabel"]
    want = facts["expand_up" if expand_up else "plain"]
    mids = [c["mid"] for c in facts["classes"]]
    spec = SelectSpec(classes=tuple(mids), multi_label="multi", expand_up=expand_up,
                      min_confidence=0.5)  # fmt: skip
    with open_catalog("v7", Endpoints.for_mirror(mirror.url), home=tmp_path) as opened:
        sel = select(spec, catalog=opened)
    got: dict[str, dict[str, Any]] = {}
    for r in sel.table.to_pylist():
        photo = got.setdefault(r["image_id"], {"split": r["split"], "labels": [],
                                               "negatives": [], "machine": {}})  # fmt: skip
        if r["role"] == "negative":
            photo["negatives"].append(r["label_mid"])
        elif r["source"] == "machine":
            photo["machine"][r["label_mid"]] = round(r["confidence"], 4)
        else:
            photo["labels"].append(r["label_mid"])
    for photo in got.values():
        photo["labels"].sort(key=mids.index)
        photo["negatives"].sort(key=mids.index)
    assert got == want["images"]
    counts = {m: {s: {"positive": 0, "negative": 0, "unknown": 0} for s in SPLITS} for m in mids}
    for photo in got.values():
        for m in mids:
            kind = (
                "positive"
                if m in photo["labels"]
                else "negative"
                if m in photo["negatives"]
                else "unknown"
            )
            counts[m][photo["split"]][kind] += 1
    assert counts == want["counts"]
    assert sum(bool(p["machine"]) for p in got.values()) > 3  # the block plants some
    assert sum(len(p["labels"]) >= 3 for p in got.values()) > 5


def test_per_class_sample_keeps_whole_images(cat: Catalog) -> None:
    spec = SelectSpec(classes=("Cat", "Dog"), multi_label="multi", per_class=1, seed=3)
    rows = rows_of(select(spec, catalog=cat).table)
    images = {r[0] for r in rows}
    full = rows_of(
        select(SelectSpec(classes=("Cat", "Dog"), multi_label="multi"), catalog=cat).table
    )
    assert [r for r in full if r[0] in images] == rows  # every label of a chosen image


def test_negatives_verified_random_and_both(cat: Catalog) -> None:
    spec = SelectSpec(classes=("Cat",), negatives="verified", splits=("train",))
    sel = select(spec, catalog=cat)
    assert sel.classes == ["Cat", "not Cat"]
    assert rows_of(sel.table)[-1] == (
        image_id(2), "train", CAT, "not Cat", "verification", 0.0, "background"
    )  # fmt: skip
    assert sel.image_counts["not Cat"] == {"train": 1, "validation": 0, "test": 0}
    rand = select(
        spec.model_copy(update={"negatives": "random", "negatives_ratio": 2}), catalog=cat
    )
    picked = [r for r in rows_of(rand.table) if r[6] == "background"]
    assert len(picked) == 2 and {r[4] for r in picked} == {"random"}
    assert {r[0] for r in picked} <= {image_id(n) for n in (1, 2, 3, 4, 10)}  # never a cat
    with pytest.raises(NotEnoughNegativesError, match=r"train 1 of 3 wanted.*--negatives both"):
        select(spec.model_copy(update={"negatives_ratio": 3}), catalog=cat)
    both = select(spec.model_copy(update={"negatives": "both", "negatives_ratio": 3}), catalog=cat)
    sources = sorted(r[4] for r in rows_of(both.table) if r[6] == "background")
    assert sources == ["random", "random", "verification"]
    with pytest.raises(SpecError, match="use label_mode image"):
        parse_spec({"classes": ["Cat"], "negatives": "verified", "label_mode": "box"})


# --- the reference -------------------------------------------------------------------------


def md5_rank(text: str) -> int:
    """DuckDB's ``md5_number``: the MD5 as a little-endian unsigned 128-bit integer."""
    return int.from_bytes(hashlib.md5(text.encode()).digest(), "little")


def targets_of(cat: Catalog, sel: SelectSpec) -> list[dict[str, Any]]:
    out = []
    for idx, cs in enumerate(sel.classes):
        mid = cat.resolve(cs.name).mid
        pos = {mid}
        if cs.expand or sel.expand_up:
            pos |= cat.descendants(mid)
            for sub in cs.exclude_subclasses:
                drop = cat.resolve(sub).mid
                pos -= {drop} | cat.descendants(drop)
        neg = {mid} | (cat.ancestors(mid) if sel.expand_up else set())
        family = {mid} | cat.descendants(mid) | pos
        out.append({"idx": idx, "mid": mid, "name": cs.rename or cat.name(mid), "pos": pos,
                    "neg": neg, "family": family})  # fmt: skip
    return out


def positive_map(targets: list[dict[str, Any]], expand_up: bool) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for mid in {m for t in targets for m in t["pos"]}:
        holders = [t["idx"] for t in targets if mid in t["pos"]]
        direct = [t["idx"] for t in targets if t["mid"] == mid]
        out[mid] = holders if expand_up else [(direct or holders)[0]]
    return out


def reference(cat: Catalog, images: Sequence[Image], sel: SelectSpec) -> list[Row]:
    targets = targets_of(cat, sel)
    pos_map = positive_map(targets, sel.expand_up)
    neg_map: dict[str, list[int]] = defaultdict(list)
    for t in targets:
        for m in t["neg"]:
            neg_map[m].append(t["idx"])
    multi = sel.multi_label == "multi"
    machine = sel.min_confidence is not None
    split_of = {image_id(n): split for n, (split, _) in enumerate(images)}
    cands: dict[tuple[str, int], list[tuple[int, float, str, str]]] = defaultdict(list)
    negs: dict[tuple[str, int], list[tuple[str, str]]] = defaultdict(list)
    for n, (split, labels) in enumerate(images):
        if split not in sel.splits:
            continue
        iid = image_id(n)
        for mid, human, mach in labels:
            for c in pos_map.get(mid, []) if human == 1 else []:
                cands[(iid, c)].append((0, 1.0, mid, "verification"))
            if machine and mach is not None and mach >= sel.min_confidence:  # type: ignore[operator]
                for c in pos_map.get(mid, []):
                    cands[(iid, c)].append((1, mach, mid, "machine"))
            for c in neg_map.get(mid, []) if human == 0 else []:
                negs[(iid, c)].append((mid, "verification"))
    if multi:  # a verification of the label or the class overrides a machine label
        said_no = {
            (image_id(n), m) for n, (_, labels) in enumerate(images) for m, h, _ in labels if h == 0
        }
        for key in list(cands):
            keep = [
                r
                for r in cands[key]
                if r[0] == 0 or (key not in negs and (key[0], r[2]) not in said_no)
            ]
            cands[key] = keep
    best = {k: min(v, key=lambda r: (r[0], -r[1], r[2], r[3])) for k, v in cands.items() if v}
    excluded = set(expand_classes(cat, sel.exclude_images_with))
    bad = {
        image_id(n) for n, (split, labels) in enumerate(images)
        if split in sel.splits and any(h == 1 and m in excluded for m, h, _ in labels)
    }  # fmt: skip
    best = {k: v for k, v in best.items() if k[0] not in bad}
    classes_of: dict[str, set[int]] = defaultdict(set)
    for iid, c in best:
        classes_of[iid].add(c)
    if sel.multi_label == "drop":
        best = {k: v for k, v in best.items() if len(classes_of[k[0]]) == 1}
    elif sel.multi_label == "keep-first":
        best = {k: v for k, v in best.items() if k[1] == min(classes_of[k[0]])}
    best = sample(best, sel, multi)
    rows = []
    for (iid, c), r in best.items():
        t = targets[c]
        row = (iid, split_of[iid], t["mid"], t["name"], r[3], round(r[1], 4), "positive")
        rows.append(((c, 0, SPLITS.index(split_of[iid]), iid), row))
    if multi:
        for iid in {k[0] for k in best}:
            for c in range(len(targets)):
                if (iid, c) in negs and (iid, c) not in best:
                    _, source = min(negs[(iid, c)])
                    t = targets[c]
                    row = (iid, split_of[iid], t["mid"], t["name"], source, 0.0, "negative")
                    rows.append(((c, 1, SPLITS.index(split_of[iid]), iid), row))
    main = [r for _, r in sorted(rows)]
    if sel.negatives == "none":
        return main
    return main + background(cat, images, sel, targets, main, negs, bad)


def sample(
    best: dict[tuple[str, int], Any], sel: SelectSpec, multi: bool
) -> dict[tuple[str, int], Any]:
    if sel.per_class is None and not sel.balanced:
        return best
    by_class: dict[int, list[str]] = defaultdict(list)
    for iid, c in sorted(best):
        by_class[c].append(iid)
    for c in by_class:
        by_class[c].sort(key=lambda i: (md5_rank(f"{i}:{sel.seed}"), i))
    limit = sel.per_class if sel.per_class is not None else 10**9
    if sel.balanced and by_class:
        limit = min(limit, min(len(v) for v in by_class.values()))
    chosen = {(i, c) for c, ids in by_class.items() for i in ids[:limit]}
    if multi:
        images = {i for i, _ in chosen}
        return {k: v for k, v in best.items() if k[0] in images}
    return {k: v for k, v in best.items() if k in chosen}


def background(
    cat: Catalog,
    images: Sequence[Image],
    sel: SelectSpec,
    targets: list[dict[str, Any]],
    main: list[Row],
    negs: dict[tuple[str, int], list[tuple[str, str]]],
    bad: set[str],
) -> list[Row]:
    def positives(split: str, name: str) -> int:
        return len({r[0] for r in main if r[3] == name and r[1] == split and r[6] == "positive"})

    counts = {s: [positives(s, t["name"]) for t in targets] for s in sel.splits}
    wanted = {s: round(sel.negatives_ratio * sum(v) / len(v)) for s, v in counts.items()}
    family = {m for t in targets for m in t["family"]}
    forbidden = set(bad) | {r[0] for r in main}
    for n, (split, labels) in enumerate(images):
        for mid, human, mach in labels:
            machine = sel.min_confidence is not None and mach is not None
            if (
                split in sel.splits
                and mid in family
                and (
                    human == 1 or (machine and mach >= sel.min_confidence)  # type: ignore[operator]
                )
            ):
                forbidden.add(image_id(n))
    split_of = {image_id(n): split for n, (split, _) in enumerate(images)}
    verified: dict[str, dict[int, str]] = defaultdict(dict)
    if sel.negatives in ("verified", "both"):
        for (iid, c), found in negs.items():
            if iid not in forbidden and wanted.get(split_of[iid], 0) > 0:
                verified[iid][c] = min(s for _, s in found)
    order = lambda i: (md5_rank(f"{i}:{sel.seed}:negatives"), i)  # noqa: E731
    out: list[tuple[tuple[Any, ...], Row]] = []
    name = sel.negatives_name()
    for split in (s for s in SPLITS if wanted.get(s, 0) > 0):
        pool = sorted((i for i in verified if split_of[i] == split), key=order)
        if sel.negatives == "verified" and len(pool) < wanted[split]:
            raise NotEnoughNegativesError([name], {split: len(pool)}, {split: wanted[split]}, 1.0)
        chosen = pool[: wanted[split]]
        for iid in chosen:
            for c, source in verified[iid].items():
                row = (iid, split, targets[c]["mid"], name, source, 0.0, "background")
                out.append(((SPLITS.index(split), iid, targets[c]["mid"]), row))
        if sel.negatives in ("random", "both"):
            rest = sorted((i for i in split_of if split_of[i] == split and i not in forbidden
                           and i not in chosen), key=order)  # fmt: skip
            for iid in rest[: wanted[split] - len(chosen)]:
                row = (iid, split, None, name, "random", None, "background")
                out.append(((SPLITS.index(split), iid, "~"), row))
    return [r for _, r in sorted(out)]


labels_st = st.lists(
    st.tuples(
        st.sampled_from(MIDS),
        st.sampled_from([None, 0, 1, 1]),
        st.sampled_from([None, None, 0.25, 0.5, 0.75, 1.0]),
    ).filter(lambda x: x[1] is not None or x[2] is not None),
    min_size=1,
    max_size=4,
    unique_by=lambda x: x[0],
)
images_st = st.lists(st.tuples(st.sampled_from(SPLITS), labels_st), min_size=1, max_size=24)
class_st = st.sampled_from(
    ["Cat", "Dog", "Hamburger", "Sandwich", "Food", {"name": "Carnivore", "expand": True},
     {"name": "Sandwich", "expand": True, "exclude_subclasses": ["Hamburger"], "rename": "Other"}]
)  # fmt: skip
spec_st = st.fixed_dictionaries(
    {
        "classes": st.lists(class_st, min_size=1, max_size=3, unique_by=str),
        "multi_label": st.sampled_from(["multi", "multi", "drop", "keep-first"]),
        "expand_up": st.booleans(),
        "min_confidence": st.sampled_from([None, 0.5]),
        "per_class": st.sampled_from([None, None, 1, 2]),
        "balanced": st.booleans(),
        "seed": st.integers(0, 2),
        "exclude_images_with": st.sampled_from([(), ("Person",)]),
        "splits": st.sampled_from([SPLITS, ("train", "test")]),
        "negatives": st.sampled_from(["none", "verified", "random", "both"]),
        "negatives_ratio": st.sampled_from([0.5, 1.0, 2.0]),
    }
)


def _valid(raw: dict[str, Any]) -> SelectSpec | None:
    raw = dict(raw)
    if raw["multi_label"] != "multi":
        raw["expand_up"] = False
    spec = SelectSpec.model_validate(raw)
    names = [c if isinstance(c, str) else c.get("rename", c["name"]) for c in raw["classes"]]
    return spec if len({n.lower() for n in names}) == len(names) else None


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images=images_st, raws=st.lists(spec_st, min_size=3, max_size=3))
def test_selection_matches_the_reference(images: list[Image], raws: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cat = build(Path(tmp), images)
        for raw in raws:
            spec = _valid(raw)
            if spec is None:
                continue
            try:
                want: list[Row] | None = reference(cat, images, spec)
            except NotEnoughNegativesError:
                want = None
            if want is None:
                with pytest.raises(NotEnoughNegativesError):
                    select(spec, catalog=cat)
                continue
            sel = select(spec, catalog=cat)
            assert rows_of(sel.table) == want
            targets = resolve_targets(cat, spec)
            excluded = expand_classes(cat, spec.exclude_images_with)
            plain = select_plain(cat.connection, spec, targets, excluded, True)
            assert plain.table.equals(sel.table)  # the PostgreSQL route's SQL agrees
        cat.close()
