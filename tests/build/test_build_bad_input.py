"""Hostile input becomes excluded-with-reason (or a clear error), never a crash mid-run."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from PIL import Image

from oiforge.build import BuildInputs, ExcludeList, build_dataset, read_exclude_list
from oiforge.build.synthetic import (
    SyntheticSet,
    image_id_for,
    photo_like,
    selection_row,
    store_file,
    write_selection,
)
from oiforge.errors import InvalidInputError, MalformedFileError, SpecError
from oiforge.spec import BuildSpec

BOX = {"box_index": 0, "x_min": 0.1, "x_max": 0.6, "y_min": 0.2, "y_max": 0.7}


def _png_bomb() -> bytes:
    """A tiny PNG whose header claims 30000×30000 pixels (a decompression bomb)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 4  # signature, chunk length; then b"IHDR" + width + height
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", 30000, 30000)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 4 + 13]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def _cases() -> list[tuple[str, bytes | None, dict[str, Any], str]]:
    good = photo_like(1)
    return [
        ("truncated", good[: len(good) // 2], BOX, "decode_error"),
        ("zero", b"", BOX, "empty_file"),
        ("text", b"<html>photo unavailable</html>", BOX, "not_an_image"),
        ("bomb", _png_bomb(), BOX, "too_many_pixels"),
        ("missing", None, BOX, "missing"),
        ("outside", good, {**BOX, "x_min": -0.5}, "box_out_of_range"),
        ("inverted", good, {**BOX, "x_min": 0.8, "x_max": 0.2}, "box_inverted"),
        ("tiny", photo_like(2, 40, 30), BOX, "image_too_small"),
        ("nan", good, {**BOX, "y_max": float("nan")}, "box_not_finite"),
        ("smallbox", photo_like(3), {**BOX, "x_max": 0.11}, "crop_too_small"),
    ]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticSet, dict[str, str]]:
    root = tmp_path_factory.mktemp("hostile")
    rows, expect = [], {}
    for n, (_, data, box, reason) in enumerate(_cases()):
        iid = image_id_for(500 + n)
        if data is not None:
            store_file(root / "store", iid).parent.mkdir(parents=True, exist_ok=True)
            store_file(root / "store", iid).write_bytes(data)
        rows.append(selection_row(iid, "/m/a", "Cat/Dog ünïcode", "train", **box))
        expect[iid] = reason
    good = image_id_for(900)
    store_file(root / "store", good).write_bytes(photo_like(9))
    rows.append(selection_row(good, "/m/a", "Cat/Dog ünïcode", "train", **BOX))
    rows.append(selection_row("../../etc/passwd", "/m/a", "x", "train", **BOX))
    write_selection(root / "selection.parquet", rows)
    return SyntheticSet(root / "store", root / "selection.parquet", [good]), expect


def test_every_bad_item_is_excluded_with_its_reason(
    hostile: tuple[SyntheticSet, dict[str, str]], tmp_path: Path
) -> None:
    s, expect = hostile
    spec = BuildSpec(size=64, max_pixels=50_000_000)
    result = build_dataset(BuildInputs(s.selection, s.store, tmp_path / "ds", spec, workers=1))
    assert result.samples == 1
    excluded = pq.read_table(result.out / "excluded.parquet").to_pylist()
    reasons = {e["image_id"]: e["reason"] for e in excluded}
    for iid, reason in expect.items():
        assert reasons[iid].startswith(reason), (iid, reasons[iid])
    assert any(e["reason"] == "invalid_image_id" for e in excluded)
    classes = json.loads((result.out / "classes.json").read_text())
    assert classes == [
        {"index": 0, "name": "Cat/Dog ünïcode", "folder": "Cat_Dog_ünïcode", "mid": "/m/a"}
    ]
    assert len(list((result.out / "train" / "Cat_Dog_ünïcode").glob("*.jpg"))) == 1
    assert not (tmp_path / "etc").exists()


def test_missing_selection_and_bad_spec_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="selection file not found"):
        build_dataset(BuildInputs(tmp_path / "nope.parquet", tmp_path, tmp_path / "ds"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(MalformedFileError):
        build_dataset(BuildInputs(tmp_path / "bad.parquet", tmp_path, tmp_path / "ds"))
    with pytest.raises(ValueError, match="sum to 1"):
        BuildSpec(split=(0.5, 0.1, 0.1))
    from oiforge.spec import parse_spec

    with pytest.raises(SpecError):
        parse_spec({"classes": ["Cat"], "build": {"formats": []}})


def test_refuses_to_replace_a_folder_that_is_not_a_dataset(
    synth: SyntheticSet, tmp_path: Path
) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "precious.txt").write_text("keep me")
    with pytest.raises(InvalidInputError, match="not an oiforge dataset"):
        build_dataset(BuildInputs(synth.selection, synth.store, tmp_path / "home"))
    assert (tmp_path / "home" / "precious.txt").read_text() == "keep me"


def test_exclude_list_parsing(tmp_path: Path) -> None:
    p = tmp_path / "ex.txt"
    p.write_text(
        "# reviewed\nImageID,box,reason\n" + "00000000000000aa\n00000000000000bb,2,blurry, dark\n"
    )
    ex = read_exclude_list(p)
    assert ex.reason("00000000000000aa", None) == "listed"
    assert ex.reason("00000000000000bb", 2) == "blurry, dark"
    assert ex.reason("00000000000000bb", 1) is None
    p.write_text("00000000000000cc,/m/01yrx,review rejected Cat\n")  # one label of an image
    ex = read_exclude_list(p)
    assert ex.reason("00000000000000cc", None, "/m/01yrx") == "review rejected Cat"
    assert ex.reason("00000000000000cc", None, "/m/0bt9lr") is None
    assert ExcludeList.from_entries(ex.entries()) == ex
    p.write_text("../../etc/passwd\n")
    with pytest.raises(InvalidInputError, match=r"ex.txt:1"):
        read_exclude_list(p)


def test_attribution_markdown_is_inert(tmp_path: Path) -> None:
    from oiforge.build.card import write_attribution

    row = {
        "image_id": "00000000000000aa", "sample_path": "train/x/00000000000000aa.jpg",
        "title": "[click](javascript:alert(1)) <script>", "author": "*me*\nline",
        "author_profile_url": "", "license": "CC BY 2.0",
        "landing_url": "javascript:alert(1)", "original_url": "",
    }  # fmt: skip
    write_attribution(tmp_path, [row])
    text = (tmp_path / "ATTRIBUTION.md").read_text()
    assert "<script>" not in text and "[click](" not in text and "<javascript" not in text
    assert (
        json.loads((tmp_path / "attribution.json").read_text())["images"][0]["title"]
        == row["title"]
    )
