# ruff: noqa: E501
"""CSV → Parquet ingest against real rows quoted in the official docs (documented_real_rows.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oiforge.catalog import open_catalog
from oiforge.catalog.catalog import Catalog
from oiforge.catalog.files import official_files
from oiforge.errors import MalformedFileError

# Real rows, verbatim (documented_real_rows.md, sections B and C).
BOXES_21 = """\
ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside,XClick1X,XClick2X,XClick3X,XClick4X,XClick1Y,XClick2Y,XClick3Y,XClick4Y
000002b66c9c498e,xclick,/m/01g317,1,0.012500,0.195312,0.148438,0.587500,0,1,0,0,0,0.148438,0.012500,0.059375,0.195312,0.148438,0.357812,0.587500,0.325000
000002b66c9c498e,xclick,/m/01g317,1,0.025000,0.276563,0.714063,0.948438,0,1,0,0,0,0.025000,0.248438,0.276563,0.214062,0.914062,0.714063,0.782813,0.948438
000002b66c9c498e,xclick,/m/01g317,1,0.151562,0.310937,0.198437,0.590625,1,0,0,0,0,0.243750,0.151562,0.310937,0.262500,0.198437,0.434375,0.507812,0.590625
"""
BOXES_13 = """\
ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside
0001eeaf4aed83f9,xclick,/m/0cmf2,1,0.022673031,0.9642005,0.07103825,0.80054647,0,0,0,0,0
000595fe6fee6369,xclick,/m/02xwb,1,0.45655376,0.6097202,0.20399113,0.50554323,0,0,1,0,0
00075905539074f2,xclick,/m/04yx4,1,0.020477816,0.32935154,0.0956023,0.665392,0,0,0,1,0
000a1249af2bc5f0,xclick,/m/09j2d,1,0.56911767,0.99852943,0.0022172949,0.93569845,1,1,0,0,0
"""
BOXES_8 = """\
ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax
000002b66c9c498e,activemil,/m/0284d,1,0.560250,0.951487,0.696401,1.000000
000002b66c9c498e,xclick,/m/01g317,1,0.012520,0.195618,0.148670,0.588419
"""
HUMAN = """\
ImageID,Source,LabelName,Confidence
000002b66c9c498e,verification,/m/014j1m,0
000002b66c9c498e,verification,/m/014sv8,1
000002b66c9c498e,verification,/m/01599,0
000002b66c9c498e,verification,/m/015p6,0
"""
MACHINE = """\
ImageID,Source,LabelName,Confidence
000002b66c9c498e,machine,/m/05_4_,0.7
000002b66c9c498e,machine,/m/0krfg,0.7
000002b97e5471a0,machine,/m/05_5t0l,0.9
"""
IMAGES = """\
ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,OriginalSize,OriginalMD5,Thumbnail300KURL,Rotation
4fa8054781a4c382,train,https://farm3.staticflickr.com/5310/5898076654_51085e157c_o.jpg,https://www.flickr.com/photos/michael-beat/5898076654,https://creativecommons.org/licenses/by/2.0/,https://www.flickr.com/people/michael-beat/,Michael Beat,...die FNF-Kerze,4405052,KFukvivpCM5QXl5SqKe41g==,https://c1.staticflickr.com/6/5310/5898076654_00643a940c_z.jpg,0.0
b37f763ae67d0888,train,https://c1.staticflickr.com/1/67/197493648_628a7cb2ee_o.jpg,https://www.flickr.com/photos/drstarbuck/197493648,https://creativecommons.org/licenses/by/2.0/,https://www.flickr.com/people/drstarbuck/,Karen,Three boys on a hill,494555,9IzEn38GRNsVpATuv7gzEA==,https://c3.staticflickr.com/1/67/197493648_628a7cb2ee_z.jpg?zz=1,0.0
000060e3121c7305,train,https://c1.staticflickr.com/5/4129/5215831864_46f356962f_o.jpg,https://www.flickr.com/photos/brokentaco/5215831864,https://creativecommons.org/licenses/by/2.0/,"https://www.flickr.com/people/brokentaco/","David","28 Nov 2010, ""Our"" new house.",211079,0Sad+xMj2ttXM1U8meEJ0A==,https://c1.staticflickr.com/5/4129/5215831864_ee4e8c6535_z.jpg,90.0
"""


def _write(home: Path, version: str, kind: str, split: str, text: str, crlf: bool) -> Path:
    f = next(f for f in official_files(version, (kind,), (split,)) if f.split == split)
    path = home / "metadata" / f.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((text.replace("\n", "\r\n") if crlf else text).encode())
    return path


def _rows(cat: Catalog, sql: str) -> list[tuple[object, ...]]:
    return cat.connection.execute(sql).fetchall()


@pytest.mark.parametrize("crlf", [False, True])
def test_real_rows_of_every_layout(tmp_path: Path, crlf: bool) -> None:
    _write(tmp_path, "v7", "boxes", "train", BOXES_21, crlf)
    _write(tmp_path, "v7", "boxes", "validation", BOXES_13, crlf)
    _write(tmp_path, "v7", "human_labels", "train", HUMAN, crlf)
    _write(tmp_path, "v7", "machine_labels", "train", MACHINE, crlf)
    _write(tmp_path, "v7", "images", "train", IMAGES, crlf)
    cat = open_catalog("v7", home=tmp_path, fetch_missing=False)
    assert _rows(cat, "SELECT split, count(*) FROM boxes GROUP BY 1 ORDER BY 1") == [
        ("train", 3),
        ("validation", 4),
    ]
    first = _rows(cat, "SELECT x_min, y_max, is_occluded, is_truncated FROM boxes ORDER BY x_min")
    assert first[0][0] == pytest.approx(0.0125) and first[0][1] == pytest.approx(0.5875)
    assert _rows(cat, "SELECT is_group_of FROM boxes WHERE label_mid = '/m/02xwb'") == [(1,)]
    assert _rows(cat, "SELECT sum(confidence) FROM human_labels") == [(1.0,)]
    assert _rows(cat, "SELECT max(confidence) FROM machine_labels")[0][0] == pytest.approx(0.9)
    title, author, rot, size = _rows(
        cat,
        "SELECT title, author, rotation, original_size FROM images "
        "WHERE image_id = '000060e3121c7305'",
    )[0]
    assert (title, author, rot, size) == ('28 Nov 2010, "Our" new house.', "David", 90.0, 211079)
    counts = cat.class_counts(["Person", "/m/0cmf2"]).to_pylist()
    assert counts[0]["boxes_train"] == 3 and counts[1]["boxes_validation"] == 1


def test_eight_column_boxes_have_unknown_flags(tmp_path: Path) -> None:
    _write(tmp_path, "v4", "boxes", "train", BOXES_8, False)
    cat = open_catalog("v4", home=tmp_path, fetch_missing=False)
    assert _rows(cat, "SELECT count(*), count(is_occluded) FROM boxes") == [(2, 0)]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (HUMAN + "000002b66c9c498e,verification,/m/0\n", 6, "Expected Number of Columns"),
        (HUMAN + "000002b66c9c498e,verification,/m/015p6,0,7\n", 6, "Columns"),
        (HUMAN + '000002b66c9c498e,"verification,/m/015p6,0\n', 6, "quote"),
        (HUMAN + "000002b66c9c498e,verification,/m/015p6,yes\n", 6, ""),
        ("ImageID,LabelName\n000002b66c9c498e,/m/015p6\n", 1, "Confidence"),
        ("", 1, "empty"),
    ],
)
def test_malformed_csv_names_file_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = _write(tmp_path, "v7", "human_labels", "train", text, False)
    cat = open_catalog("v7", home=tmp_path, fetch_missing=False)  # class search still works
    assert cat.resolve("Cat").mid == "/m/01yrx"
    with pytest.raises(MalformedFileError) as err:
        cat.ingest_cached()
    assert err.value.path == str(path)
    assert err.value.line == line
    assert words in str(err.value)


def test_ingest_is_incremental_and_idempotent(tmp_path: Path) -> None:
    csv = _write(tmp_path, "v7", "boxes", "validation", BOXES_13, False)
    open_catalog("v7", home=tmp_path, fetch_missing=False).close()
    parquet = next((tmp_path / "parquet").rglob("validation-annotations-bbox.csv.parquet"))
    stamp = parquet.stat().st_mtime_ns
    open_catalog("v7", home=tmp_path, fetch_missing=False).close()
    assert parquet.stat().st_mtime_ns == stamp  # unchanged source: not converted again
    csv.touch()  # same bytes, new mtime: MD5 says it is current
    open_catalog("v7", home=tmp_path, fetch_missing=False).close()
    assert parquet.stat().st_mtime_ns == stamp
    csv.write_text(BOXES_13 + BOXES_13.splitlines()[1] + "\n")
    cat = open_catalog("v7", home=tmp_path, fetch_missing=False)
    assert _rows(cat, "SELECT count(*) FROM boxes") == [(5,)]
    assert parquet.stat().st_mtime_ns != stamp


def test_table_views_follow_the_files_ingested_since_open(tmp_path: Path) -> None:
    """The views are bound on the connection's next use (not at open), and follow ``ensure``."""
    _write(tmp_path, "v7", "boxes", "validation", BOXES_13, False)
    cat = open_catalog("v7", home=tmp_path, fetch_missing=False)
    assert _rows(cat, "SELECT count(*) FROM human_labels") == [(0,)]
    _write(tmp_path, "v7", "human_labels", "train", HUMAN, False)
    cat.ensure(["human_labels"], ["train"])
    assert _rows(cat, "SELECT count(*), sum(confidence) FROM human_labels") == [(4, 1.0)]
    assert _rows(cat, "SELECT count(*) FROM boxes") == [(4,)]


def test_parquet_copy_is_sorted_by_label_then_image(tmp_path: Path) -> None:
    _write(tmp_path, "v7", "boxes", "validation", BOXES_13, False)
    cat = open_catalog("v7", home=tmp_path, fetch_missing=False)
    parquet = next((tmp_path / "parquet").rglob("*bbox.csv.parquet"))
    got = _rows(cat, f"SELECT label_mid, image_id FROM read_parquet('{parquet}')")
    assert got == sorted(got)


def test_an_ingest_sort_is_bounded_by_the_memory_available_then_restored(tmp_path: Path) -> None:
    import duckdb

    from oiforge.catalog.ingest import available_memory, bound_memory

    con = duckdb.connect()
    before = con.execute("SELECT current_setting('memory_limit')").fetchall()
    free = available_memory()
    with bound_memory(con, tmp_path / "spill"):
        inside = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        spill = con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
    assert spill == str(tmp_path / "spill")
    if free is not None:  # Linux: at most half of what is available (1 GiB at least)
        value, unit = inside.split()
        gib = float(value) * {"MiB": 1 / 1024, "GiB": 1.0}[unit]
        assert gib <= max(1.0, free / 2**30 / 2) + 0.01
    assert con.execute("SELECT current_setting('memory_limit')").fetchall() == before


def test_a_failure_mid_read_keeps_its_own_error(tmp_path: Path) -> None:
    """A bounded read that fails with its result still open (disk full while spilling, ...)
    raises that error, not DuckDB's "connection has an open result" from the reset."""
    import duckdb

    from oiforge.catalog.ingest import bound_memory

    con = duckdb.connect()
    with pytest.raises(OSError, match="No space left"), bound_memory(con, tmp_path / "spill"):
        reader = con.sql("SELECT * FROM range(1000000)").to_arrow_reader(1000)
        reader.read_next_batch()
        raise OSError(28, "No space left on device")
