"""Class resolution, search and hierarchy against the REAL shipped class lists (offline)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from oiforge.catalog import AmbiguousClassError, open_catalog
from oiforge.catalog.catalog import Catalog
from oiforge.catalog.classes import ROOT_MID, parse_class_csv
from oiforge.errors import MalformedFileError, UnknownClassError


@pytest.fixture(scope="module")
def v7() -> Catalog:
    return open_catalog("v7", fetch_missing=False)


@pytest.fixture(scope="module")
def v6() -> Catalog:
    return open_catalog("v6", fetch_missing=False)


def test_class_list_sizes(v7: Catalog, v6: Catalog) -> None:
    assert len(v7.classes.names) == 20931
    assert len(v7.classes.boxable) == 601
    assert len(v6.classes.names) == 19994
    assert v6.classes.boxable == v7.classes.boxable


@pytest.mark.parametrize(
    ("query", "mid", "name"),
    [
        ("Airplane", "/m/0cmf2", "Fixed-wing aircraft"),
        ("Bat", "/m/01h44", "Bat (Animal)"),
        ("Human beard", "/m/015h_t", "Beard"),
        ("cAT", "/m/01yrx", "Cat"),
        ("/m/0cmf2", "/m/0cmf2", "Fixed-wing aircraft"),
        (" Dog ", "/m/0bt9lr", "Dog"),
    ],
)
def test_resolve_v7_including_renamed(v7: Catalog, query: str, mid: str, name: str) -> None:
    info = v7.resolve(query)
    assert (info.mid, info.name) == (mid, name)


def test_new_names_resolve_in_old_versions(v6: Catalog) -> None:
    assert v6.resolve("Fixed-wing aircraft").name == "Airplane"
    assert v6.resolve("Beard").name == "Human beard"


def test_root_is_in_no_class_list_but_resolves(v7: Catalog) -> None:
    assert ROOT_MID not in v7.classes.names
    assert v7.resolve(ROOT_MID).name == "Entity"


def test_case_insensitive_duplicates_need_a_mid(v6: Catalog) -> None:
    with pytest.raises(AmbiguousClassError) as err:
        v6.resolve("ball")
    assert "/m/0156sn" in str(err.value) and "/m/018xm" in str(err.value)
    assert v6.resolve("/m/018xm").boxable


def test_unknown_class_suggests_close_names(v7: Catalog) -> None:
    with pytest.raises(UnknownClassError) as err:
        v7.resolve("Hambrger")
    assert "Hamburger" in err.value.suggestions
    assert err.value.exit_code == 2
    with pytest.raises(UnknownClassError):
        v7.resolve("/m/nonexistent")


def test_search_ranks_exact_then_substring_then_fuzzy(v7: Catalog) -> None:
    hits = v7.search("cat", limit=10)
    assert hits[0].name == "Cat"
    assert all("cat" in h.name.lower() for h in hits[:5])
    assert v7.search("hambrger", limit=3)[0].name == "Hamburger"
    boxable = v7.search("car", limit=50, boxable_only=True)
    assert boxable and all(h.boxable for h in boxable)
    assert any(h.mid == "/m/0cmf2" for h in v7.search("airplane", limit=10))


def test_hierarchy_counts(v7: Catalog) -> None:
    h = v7.hierarchy
    assert h.root == ROOT_MID
    assert len(h.mids) == 602
    assert sum(1 for m in h.mids if len(h.parents(m)) > 1) == 45
    assert sum(1 for _, _, k in h.links if k == "part") == 38
    assert ROOT_MID not in v7.classes.names


def test_animal_and_food_subclasses(v7: Catalog) -> None:
    animal = v7.descendants("Animal")
    food = v7.descendants("Food")
    assert v7.resolve("Cat").mid in animal and v7.resolve("Hamburger").mid in food
    assert v7.resolve("Cat").mid not in food
    assert len(animal) == 110
    assert len(food) == 76
    assert all(m in v7.classes.boxable for m in animal | food)


def test_subtree_shows_multi_parent_classes_under_each_parent(v7: Catalog) -> None:
    h = v7.hierarchy
    shared = next(m for m in sorted(h.mids) if len(h.parents(m)) > 1)
    root = v7.subtree(ROOT_MID)
    found: list[str] = []

    def walk(node: object, parent: str) -> None:
        for child in node.children:  # type: ignore[attr-defined]
            if child.mid == shared:
                found.append(parent)
            walk(child, child.mid)

    walk(root, ROOT_MID)
    assert sorted(found) == sorted(h.parents(shared))


def test_parts_only_with_parts(v7: Catalog) -> None:
    person = v7.resolve("Person").mid
    body = v7.resolve("Human body").mid
    face = v7.resolve("Human face").mid
    plain = {c.mid for c in v7.subtree(person).children}
    with_parts = {c.mid: c for c in v7.subtree(person, parts=True).children}
    assert body not in plain
    assert with_parts[body].kind == "part"
    assert {c.mid: c.kind for c in with_parts[body].children}[face] == "part"
    assert face not in v7.descendants(person)


def test_subtree_depth_limit(v7: Catalog) -> None:
    tree = v7.subtree("Animal", depth=1)
    assert tree.children and all(not c.children for c in tree.children)


def test_class_csv_with_quotes_crlf_and_header() -> None:
    text = (
        'LabelName,DisplayName\r\n/m/02wvth,"Fiat 500 ""topolino"""\r\n'
        '/m/03gtp5,Lamb\'s quarters\r\n/m/03hgsf0,"Lemon, lime and bitters"\r\n'
    )
    rows = parse_class_csv(text, "x.csv")
    assert rows == [
        ("/m/02wvth", 'Fiat 500 "topolino"'),
        ("/m/03gtp5", "Lamb's quarters"),
        ("/m/03hgsf0", "Lemon, lime and bitters"),
    ]
    assert parse_class_csv("/m/011k07,Tortoise\n/m/011q46kg,Container", "y") == [
        ("/m/011k07", "Tortoise"),
        ("/m/011q46kg", "Container"),
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [("/m/011k07,Tortoise\n/m/012074\n", 2), ("/m/a,A\nnot-a-mid,B\n", 2), ("", None)],
)
def test_malformed_class_csv_names_the_line(text: str, line: int | None) -> None:
    with pytest.raises(MalformedFileError) as err:
        parse_class_csv(text, "bad.csv")
    assert err.value.line == line and "bad.csv" in str(err.value)


def test_reopen_reads_the_kept_class_tables_and_an_unwritable_home_still_works(
    tmp_path: Path,
) -> None:
    def rows(cat: Catalog) -> list[tuple[object, ...]]:
        con = cat.connection
        return sorted(con.execute("SELECT * FROM classes").fetchall()) + sorted(
            con.execute("SELECT * FROM hierarchy").fetchall()
        )

    home = tmp_path / "home"
    with open_catalog("v7", home=home, fetch_missing=False) as first:
        expected = rows(first)
        assert first.resolve("Bat").name == "Bat (Animal)"  # qualifier index, built lazily
    kept = sorted(p.name for p in (home / "parsed").iterdir())
    assert any(n.startswith("classes-") for n in kept) and any(n.endswith(".json") for n in kept)
    with open_catalog("v7", home=home, fetch_missing=False) as again:
        assert rows(again) == expected
        assert again.resolve("Airplane").mid == "/m/0cmf2"  # aliases, built lazily
    blocked = tmp_path / "blocked"  # nothing can be kept there (root ignores chmod)
    blocked.mkdir()
    (blocked / "parsed").write_text("a file where the folder would go")
    with open_catalog("v7", home=blocked, fetch_missing=False) as unkept:
        assert rows(unkept) == expected


_NAMES_CHILD = """
import json, sys
from oiforge.catalog import open_catalog
with open_catalog("v7", home=sys.argv[1], fetch_missing=False) as cat:
    names = cat.classes.names
    print(json.dumps([len(names), names["/m/0cmf2"], sorted(cat.classes.boxable)[:3],
                      cat.resolve("bat").mid]))
"""


def test_a_new_process_loads_the_kept_class_lists_and_reparses_a_damaged_one(
    tmp_path: Path,
) -> None:
    def in_child() -> list[object]:
        out = subprocess.run(
            [sys.executable, "-c", _NAMES_CHILD, str(tmp_path)],
            capture_output=True,
            text=True,
            check=True,
        )
        loaded: list[object] = json.loads(out.stdout)
        return loaded

    with open_catalog("v7", home=tmp_path, fetch_missing=False) as cat:
        names = cat.classes.names
        expected = [len(names), names["/m/0cmf2"], sorted(cat.classes.boxable)[:3]]
        expected.append(cat.resolve("bat").mid)
    kept = sorted((tmp_path / "parsed").glob("*.json"))
    assert kept and all(len(json.loads(p.read_bytes())) == 2 for p in kept)  # [mids, names]
    assert in_child() == expected  # read from the kept JSON
    for p in kept:
        p.write_text(json.dumps([["/m/0cmf2", "x"]]))  # a list of pairs: not this format
    assert in_child() == expected  # parsed again from the CSV
