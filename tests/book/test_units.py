"""Pure parts of the book: words, class ranking, geometry, crops, text, inputs (fast)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from oiforge.book.credits import is_cc_by, licence_name
from oiforge.book.layout import Rect, grid_cells, grid_size, parse_trim
from oiforge.book.model import (
    Box,
    LayoutOptions,
    Photo,
    build_request,
    load_config,
    load_overrides,
    parse_letter_map,
    parse_letters,
    read_plan,
)
from oiforge.book.photos import load_photo, square_region
from oiforge.book.plan import KID_BONUS, rank_classes
from oiforge.book.text import clean, text_width, wrap
from oiforge.book.words import KID_FRIENDLY, PERSON_NAMES, label_of, letter_of
from oiforge.errors import InvalidInputError, MalformedFileError, SpecError
from oiforge.paths import package_data

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "book.yaml"


def _v7_names() -> set[str]:
    text = package_data("openimages", "oidv7-class-descriptions.csv").read_text("utf-8")
    return {line.split(",", 1)[1].strip().strip('"').lower() for line in text.splitlines()[1:]}


def test_word_lists_name_real_classes() -> None:
    names = _v7_names()
    assert not sorted(KID_FRIENDLY - names)
    assert not sorted(PERSON_NAMES - names)


@pytest.mark.parametrize(
    ("name", "label", "letter"),
    [("Bat (Animal)", "Bat", "B"), ("ice cream", "Ice cream", "I"), ("Éclair", "Éclair", "E"),
     ("10 cane", "10 cane", None), ("'Nduja", "'Nduja", None), ("(x)", "(x)", None)],
)  # fmt: skip
def test_label_and_letter(name: str, label: str, letter: str | None) -> None:
    assert label_of(name) == label and letter_of(name) == letter


_classes = st.lists(
    st.tuples(st.text("abcdefxyz/_0123456789", min_size=3, max_size=8),
              st.sampled_from(["Apple", "Apricot", "Banana", "Bat (Animal)", "Ball (Object)",
                               "Abstraction", "Person", "Zebra", "Weapon", "42"])),
    max_size=30, unique_by=lambda t: t[0],
)  # fmt: skip


@given(_classes, st.integers(0, 10**6), st.sets(st.text("abc", min_size=3, max_size=3)))
def test_rank_classes_properties(
    classes: list[tuple[str, str]], base: int, excluded: set[str]
) -> None:
    positives = {mid: (base + i * 7919) % 100_000 for i, (mid, _) in enumerate(classes)}
    ranked = rank_classes(classes, positives, excluded)
    labels = [c.label.lower() for cands in ranked.values() for c in cands]
    assert len(labels) == len(set(labels))
    for letter, cands in ranked.items():
        assert all(c.letter == letter and c.mid not in excluded for c in cands)
        assert all(c.name not in ("Weapon", "42") and c.positives >= 1 for c in cands)
        assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)


def test_kid_friendly_beats_a_much_bigger_abstract_class() -> None:
    ranked = rank_classes(
        [("/m/a", "Apple"), ("/m/b", "Abstraction")], {"/m/a": 50, "/m/b": 40_000}, set()
    )
    assert [c.name for c in ranked["A"]] == ["Apple", "Abstraction"] and KID_BONUS > 2


def test_letter_maps() -> None:
    assert parse_letter_map("a=Apple, B = Bird ,") == {"A": "Apple", "B": "Bird"}
    assert parse_letters("x, q") == ("Q", "X")
    for bad in ("A", "AB=Apple", "1=One", "A=Apple,A=Ant", "A="):
        with pytest.raises(InvalidInputError):
            parse_letter_map(bad)
    with pytest.raises(InvalidInputError):
        parse_letters("XY")


def test_trims() -> None:
    assert parse_trim("8.5x8.5") == (8.5, 8.5) and parse_trim("8x10") == (8.0, 10.0)
    assert parse_trim("A4") == pytest.approx((8.2677, 11.6929), abs=1e-3)
    assert parse_trim("210x297mm") == pytest.approx(parse_trim("a4"))
    for bad in ("", "8.5", "0x0", "100x100", "8x8ft", "NaNxNaN"):
        with pytest.raises(InvalidInputError):
            parse_trim(bad)


@given(st.integers(0, 40), st.sampled_from([1, 4, 9, 16, 25]))
def test_grid_size(available: int, max_photos: int) -> None:
    size = grid_size(available, max_photos)
    assert size <= max(available, 0) and size <= max_photos
    assert size in (0, 1, 4, 9, 16, 25) and (size > 0) == (available > 0)


@given(st.floats(100, 2000), st.floats(100, 2000), st.sampled_from([1, 4, 9, 16]), st.floats(0, 20))
def test_grid_cells_are_equal_squares_inside_without_overlap(
    w: float, h: float, count: int, gutter: float
) -> None:
    area = Rect(10, 20, w, h)
    cells = grid_cells(area, count, gutter)
    assert len(cells) == count
    for c in cells:
        assert c.w == pytest.approx(cells[0].w) and c.w == pytest.approx(c.h)
        assert c.x >= area.x - 1e-6 and c.x + c.w <= area.x + area.w + 1e-6
        assert c.y >= area.y - 1e-6 and c.y + c.h <= area.y + area.h + 1e-6
    for i, a in enumerate(cells):
        for b in cells[i + 1 :]:
            assert a.x + a.w <= b.x + 1e-6 or b.x + b.w <= a.x + 1e-6 or \
                a.y + a.h <= b.y + 1e-6 or b.y + b.h <= a.y + 1e-6  # fmt: skip


_unit = st.floats(0, 1)


@given(st.integers(1, 4000), st.integers(1, 4000), _unit, _unit, _unit, _unit)
def test_square_region_stays_inside_and_holds_the_box_centre(
    w: int, h: int, a: float, b: float, c: float, d: float
) -> None:
    x0, x1, y0, y1 = min(a, b), max(a, b), min(c, d), max(c, d)
    box = Box(x_min=x0, x_max=x1, y_min=y0, y_max=y1) if x1 > x0 and y1 > y0 else None
    left, top, right, bottom = square_region(w, h, box)
    assert 0 <= left < right <= w and 0 <= top < bottom <= h
    assert right - left == bottom - top <= min(w, h)
    if box is not None and right - left > 2:
        cx, cy = (x0 + x1) / 2 * w, (y0 + y1) / 2 * h
        assert left - 1 <= cx <= right + 1 and top - 1 <= cy <= bottom + 1


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200), st.floats(30, 400))
def test_wrap_fits_and_keeps_every_character(text: str, width: float) -> None:
    cleaned = clean(text, 10_000)
    lines = wrap(cleaned, "bold", 9, width)
    assert all(text_width(ln, "bold", 9) <= width or len(ln) <= 2 for ln in lines)
    assert "".join(lines).replace(" ", "") == cleaned.replace(" ", "")
    assert not any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in cleaned)


def test_licences() -> None:
    assert licence_name("https://creativecommons.org/licenses/by/2.0/") == "CC BY 2.0"
    assert licence_name("https://creativecommons.org/licenses/by-sa/2.0/") == "CC BY-SA 2.0"
    assert is_cc_by("https://creativecommons.org/licenses/by/2.0/")
    assert not is_cc_by("https://creativecommons.org/licenses/by-nc/2.0/") and not is_cc_by("")
    assert licence_name("") == "licence unknown"


def _photo_bytes(mode: str, fmt: str, size: tuple[int, int] = (300, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "ok"),
    [(_photo_bytes("L", "PNG"), True), (_photo_bytes("RGBA", "PNG"), True),
     (_photo_bytes("CMYK", "JPEG"), True), (b"", False), (b"GIF89a\x00", False),
     (_photo_bytes("L", "PNG", (12000, 9000)), False)],
)  # fmt: skip
def test_hostile_and_odd_files_are_values(tmp_path: Path, data: bytes, ok: bool) -> None:
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    loaded = load_photo(Photo(image_id="local-x", source="local", path=str(path)), None)
    assert loaded.is_ok == ok and (loaded.error == "") == ok
    if ok:
        assert loaded.image is not None and loaded.image.mode == "RGB" and loaded.side == 200


def test_changed_local_file_and_bad_store_ids(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(_photo_bytes("L", "PNG"))
    changed = Photo(image_id="local-x", source="local", path=str(path), sha256="0" * 64)
    assert "changed" in load_photo(changed, None).error
    assert load_photo(Photo(image_id="../../etc/passwd"), tmp_path).error


def test_overrides_and_config_files(tmp_path: Path) -> None:
    good = tmp_path / "o.yaml"
    good.write_text("drop: [0123456789abcdef]\nforce:\n  a: [fedcba9876543210]\n")
    o = load_overrides(good)
    assert o.drop == {"0123456789abcdef"} and o.force == {"A": ("fedcba9876543210",)}
    for text in ("drop: [../x]", "force: {AB: []}", "keep: []", "[1, 2", "force: [1]"):
        good.write_text(text)
        with pytest.raises(SpecError):
            load_overrides(good)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("title: T\ncolour: red\n")
    with pytest.raises(SpecError, match="colour"):
        load_config(cfg)
    with pytest.raises(SpecError, match="max_photos"):
        build_request({}, {"max_photos": 5})
    with pytest.raises(SpecError, match="preset"):
        build_request({}, {"preset": "nowhere"})
    kdp = build_request({}, {"preset": "kdp"}).layout
    assert kdp.bleed and kdp.trim == "8.5x8.5" and kdp.margin_in == 0.5


def test_example_config_loads() -> None:
    request = build_request(load_config(EXAMPLE), {"custom": None})
    assert request.select.pins and request.layout.title


def test_malformed_book_json_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "book.json"
    for text in ("{", '{"letters": [{"letter": "AA", "label": "x", "class_name": "x"}]}', "[]"):
        path.write_text(text)
        with pytest.raises(MalformedFileError):
            read_plan(path)
    with pytest.raises(MalformedFileError, match="book plan"):
        read_plan(tmp_path / "missing.json")
    assert LayoutOptions().trim == "8.5x8.5"


def test_a_fifo_in_the_store_does_not_block(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "ab" / "abcdef0123456789.jpg"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    assert "regular file" in load_photo(Photo(image_id="abcdef0123456789"), tmp_path).error
