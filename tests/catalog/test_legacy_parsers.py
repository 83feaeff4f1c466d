# ruff: noqa: E501
"""v1-v3 parsers against the real rows the READMEs quote (documented_real_rows.md, section A;
openimages/dataset READMEV1.md and READMEV3.md).

The READMEs wrap the long ``images.csv`` lines with a trailing ``\\`` for the page; that is
markdown framing, not file content. Joining the wrapped lines literally loses a comma (the
README breaks the line *after* ``"...house."`` and before ``211079``), which a real file never
has: the test rebuilds the real one-line row, and checks that the literal join is refused
with the file and line named instead of being read as a shifted row.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from oiforge.catalog import open_catalog
from oiforge.catalog.catalog import Catalog
from oiforge.catalog.classes import parse_class_csv
from oiforge.catalog.files import official_files
from oiforge.errors import MalformedFileError

# READMEV3.md / READMEV1.md, verbatim (markdown line continuations included).
README_IMAGES = """\
ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,\\
OriginalSize,OriginalMD5,Thumbnail300KURL
000060e3121c7305,train,https://c1.staticflickr.com/5/4129/5215831864_46f356962f_o.jpg,\\
https://www.flickr.com/photos/brokentaco/5215831864,\\
https://creativecommons.org/licenses/by/2.0/,\\
"https://www.flickr.com/people/brokentaco/","David","28 Nov 2010 Our new house."\\
211079,0Sad+xMj2ttXM1U8meEJ0A==,https://c1.staticflickr.com/5/4129/5215831864_ee4e8c6535_z.jpg
"""
MACHINE = """\
ImageID,Source,LabelName,Confidence
000002b66c9c498e,machine,/m/05_4_,0.7
000002b66c9c498e,machine,/m/0krfg,0.7
000002b66c9c498e,machine,/m/01kcnl,0.5
000002b97e5471a0,machine,/m/05_5t0l,0.9
000002b97e5471a0,machine,/m/0cgh4,0.8
000002b97e5471a0,machine,/m/0dx1j,0.8
000002b97e5471a0,machine,/m/039jbq,0.8
000002b97e5471a0,machine,/m/03nfmq,0.8
000002b97e5471a0,machine,/m/03jm5,0.7
"""
HUMAN = """\
ImageID,Source,LabelName,Confidence
000026e7ee790996,verification,/m/04hgtk,0
000026e7ee790996,verification,/m/07j7r,1
000026e7ee790996,crowdsource-verification,/m/01bqvp,1
000026e7ee790996,crowdsource-verification,/m/0csby,1
000026e7ee790996,verification,/m/01_m7,0
000026e7ee790996,verification,/m/01cbzq,1
000026e7ee790996,verification,/m/01czv3,0
000026e7ee790996,verification,/m/01v4jb,0
000026e7ee790996,verification,/m/03d1rd,0
"""
BOXES_TRAIN = """\
ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax
000002b66c9c498e,activemil,/m/0284d,1,0.560250,0.951487,0.696401,1.000000
000002b66c9c498e,activemil,/m/052lwg6,1,0.543036,0.907668,0.699531,0.995305
000002b66c9c498e,activemil,/m/0fszt,1,0.510172,0.979656,0.641628,0.987480
000002b66c9c498e,verification,/m/01mzpv,1,0.018750,0.098438,0.767187,0.892187
000002b66c9c498e,xclick,/m/01g317,1,0.012520,0.195618,0.148670,0.588419
000002b66c9c498e,xclick,/m/0284d,1,0.528951,0.924883,0.676056,0.965571
000002b66c9c498e,xclick,/m/02wbm,1,0.530516,0.923318,0.668232,0.976526
000002b66c9c498e,xclick,/m/052lwg6,1,0.516432,0.928012,0.651017,0.985915
000002b66c9c498e,xclick,/m/0fszt,1,0.525822,0.920188,0.669797,0.971831
"""
BOXES_VAL = """\
ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside
000026e7ee790996,freeform,/m/07j7r,1,0.071905,0.145346,0.206591,0.391306,0,1,1,0,0
000026e7ee790996,freeform,/m/07j7r,1,0.439756,0.572466,0.264153,0.435122,0,1,1,0,0
000026e7ee790996,freeform,/m/07j7r,1,0.668455,1.000000,0.000000,0.552825,0,1,1,0,0
000062a39995e348,freeform,/m/015p6,1,0.205719,0.849912,0.154144,1.000000,0,0,0,0,0
000062a39995e348,freeform,/m/05s2s,1,0.137133,0.377634,0.000000,0.884185,1,1,0,0,0
0000c64e1253d68f,freeform,/m/07yv9,1,0.000000,0.973850,0.000000,0.043342,0,1,1,0,0
0000c64e1253d68f,freeform,/m/0k4j,1,0.000000,0.513534,0.321356,0.689661,0,1,0,0,0
0000c64e1253d68f,freeform,/m/0k4j,1,0.016515,0.268228,0.299368,0.462906,1,0,0,0,0
0000c64e1253d68f,freeform,/m/0k4j,1,0.481498,0.904376,0.232029,0.489017,1,0,0,0,0
"""
V1_LABELS = """\
ImageID,Source,LabelName,Confidence
000060e3121c7305,machine,/m/06ht1,0.9
000060e3121c7305,machine,/m/05wrt,0.9
000060e3121c7305,machine,/m/01l0mw,0.8
000060e3121c7305,machine,/m/03d2wd,0.7
000060e3121c7305,machine,/m/03nxtz,0.7
000060e3121c7305,machine,/m/023907r,0.7
000060e3121c7305,machine,/m/020g49,0.7
000060e3121c7305,machine,/m/0l7_8,0.6
000060e3121c7305,machine,/m/02rfdq,0.6
000060e3121c7305,machine,/m/038t8_,0.6
000060e3121c7305,machine,/m/03f6tq,0.6
000060e3121c7305,machine,/m/01s105,0.6
000060e3121c7305,machine,/m/01nblt,0.5
"""
V1_DICT = """\
"/m/05wrt","property"
"/m/06ht1","room"
"/m/01l0mw","home"
"/m/03d2wd","dining room"
"/m/03nxtz","cottage"
"/m/020g49","hardwood"
"/m/023907r","real estate"
"/m/038t8_","estate"
"/m/03f6tq","living room"
"/m/0l7_8","floor"
"/m/01nblt","apartment"
"/m/01s105","cabinetry"
"""
V3_CLASSES = '''\
/m/025dyy,Box
/m/025f_6,Dussehra
/m/025fh,Professor x
/m/025fnn,Savannah Sparrow
/m/025fsf,Stapler
/m/025gg7,Jaguar x-type
/m/02_5h,Figure skating
/m/025_h00,Solid-state drive
/m/025_h88,White tailed prairie dog
/m/025_hbp,Mercury monterey
/m/025h_m,Yellow rumped Warbler
/m/025khl,Spätzle
/m/02wvth,"Fiat 500 ""topolino"""
/m/03gtp5,Lamb's quarters
/m/03hgsf0,"Lemon, lime and bitters"
'''
V3_CLASSES_TXT = "/m/0100nhbf\n/m/0104x9kv\n/m/0105jzwx\n/m/0105ld7g\n/m/0105lxy5\n/m/0105n86x\n/m/0105ts35\n/m/0108_09c\n/m/01_097\n/m/010dmf\n"
#: the images row as it is in the file: one line (the README's lost comma restored).
REAL_IMAGE_ROW = (
    "000060e3121c7305,train,https://c1.staticflickr.com/5/4129/5215831864_46f356962f_o.jpg,"
    "https://www.flickr.com/photos/brokentaco/5215831864,https://creativecommons.org/licenses/by/2.0/,"
    '"https://www.flickr.com/people/brokentaco/","David","28 Nov 2010 Our new house.",'
    "211079,0Sad+xMj2ttXM1U8meEJ0A==,https://c1.staticflickr.com/5/4129/5215831864_ee4e8c6535_z.jpg"
)


def unwrap_readme(text: str) -> str:
    """The README's ``\\`` + line break is page framing: join such lines as they are."""
    return re.sub(r"\\\n", "", text)


def _put(home: Path, version: str, kind: str, split: str | None, text: str) -> Path:
    f = next(f for f in official_files(version, (kind,)) if f.split == split or split is None)
    path = home / "metadata" / f.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def _open(home: Path, version: str) -> Catalog:
    return open_catalog(version, home=home, fetch_missing=False)


def test_readme_header_unwraps_to_the_eleven_columns() -> None:
    header = unwrap_readme(README_IMAGES).splitlines()[0]
    assert header.split(",") == [
        "ImageID", "Subset", "OriginalURL", "OriginalLandingURL", "License",
        "AuthorProfileURL", "Author", "Title", "OriginalSize", "OriginalMD5", "Thumbnail300KURL",
    ]  # fmt: skip


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_images_row_exact_values(tmp_path: Path, version: str) -> None:
    header = unwrap_readme(README_IMAGES).splitlines()[0]
    _put(tmp_path, version, "images", "train", f"{header}\n{REAL_IMAGE_ROW}\n")
    with _open(tmp_path, version) as cat:
        rows = cat.connection.sql("SELECT * FROM images").to_arrow_table().to_pylist()
    assert rows == [
        {
            "image_id": "000060e3121c7305",
            "original_url": "https://c1.staticflickr.com/5/4129/5215831864_46f356962f_o.jpg",
            "landing_url": "https://www.flickr.com/photos/brokentaco/5215831864",
            "license": "https://creativecommons.org/licenses/by/2.0/",
            "author_profile_url": "https://www.flickr.com/people/brokentaco/",
            "author": "David",
            "title": "28 Nov 2010 Our new house.",
            "original_size": 211079,
            "original_md5": "0Sad+xMj2ttXM1U8meEJ0A==",
            "thumbnail_url": "https://c1.staticflickr.com/5/4129/5215831864_ee4e8c6535_z.jpg",
            "rotation": None,  # no Rotation column before 2018_04
            "split": "train",
        }
    ]


def test_literal_readme_join_is_refused_with_file_and_line(tmp_path: Path) -> None:
    # '"28 Nov 2010 Our new house."211079' is a quote followed by text: not CSV.
    path = _put(tmp_path, "v3", "images", "train", unwrap_readme(README_IMAGES))
    with _open(tmp_path, "v3") as cat, pytest.raises(MalformedFileError) as err:
        cat.ensure(["images"], ["train"])
    assert str(path) in str(err.value)


def test_machine_and_human_labels_exact(tmp_path: Path) -> None:
    _put(tmp_path, "v3", "machine_labels", "train", MACHINE)
    _put(tmp_path, "v3", "human_labels", "validation", HUMAN)
    with _open(tmp_path, "v3") as cat:
        con = cat.connection
        machine = con.execute(
            "SELECT image_id, source, label_mid, confidence, split FROM machine_labels "
            "ORDER BY image_id, label_mid"
        ).fetchall()
        human = con.execute(
            "SELECT label_mid, source, confidence FROM human_labels ORDER BY label_mid"
        ).fetchall()
    assert len(machine) == 9
    assert machine[0] == ("000002b66c9c498e", "machine", "/m/01kcnl", pytest.approx(0.5), "train")
    assert ("000002b97e5471a0", "machine", "/m/05_5t0l", pytest.approx(0.9), "train") in machine
    assert ("/m/01bqvp", "crowdsource-verification", 1.0) in human
    assert ("/m/04hgtk", "verification", 0.0) in human
    assert sum(1 for h in human if h[2] == 1.0) == 4


def test_boxes_eight_columns_on_train_thirteen_on_validation(tmp_path: Path) -> None:
    _put(tmp_path, "v2", "boxes", "train", BOXES_TRAIN)
    _put(tmp_path, "v2", "boxes", "validation", BOXES_VAL)
    with _open(tmp_path, "v2") as cat:
        rows = cat.connection.execute(
            "SELECT split, source, label_mid, x_min, x_max, y_min, y_max, is_occluded, "
            "is_truncated, is_group_of, is_depiction, is_inside FROM boxes "
            "ORDER BY split, image_id, x_min"
        ).fetchall()
    train = [r for r in rows if r[0] == "train"]
    val = [r for r in rows if r[0] == "validation"]
    assert len(train) == 9 and len(val) == 9
    assert all(r[7:] == (None,) * 5 for r in train)  # no flags in the 8-column layout
    first = next(r for r in train if r[1] == "verification")
    assert first[2] == "/m/01mzpv"
    assert first[3:7] == pytest.approx((0.018750, 0.098438, 0.767187, 0.892187))
    group = next(r for r in val if r[2] == "/m/05s2s")
    assert group[3:7] == pytest.approx((0.137133, 0.377634, 0.0, 0.884185))
    assert group[7:] == (1, 1, 0, 0, 0)


def test_v1_labels_and_dict(tmp_path: Path) -> None:
    _put(tmp_path, "v1", "class_descriptions", None, V1_DICT)
    _put(tmp_path, "v1", "machine_labels", "train", V1_LABELS)
    with _open(tmp_path, "v1") as cat:
        assert cat.resolve("Living Room").mid == "/m/03f6tq"  # dict.csv names are lower-case
        assert cat.name("/m/05wrt") == "property"
        assert not cat.classes.boxable
        top = cat.connection.execute(
            "SELECT label_mid, confidence FROM machine_labels ORDER BY confidence DESC, label_mid"
        ).fetchall()
    assert top[:2] == [("/m/05wrt", pytest.approx(0.9)), ("/m/06ht1", pytest.approx(0.9))]
    assert top[-1] == ("/m/01nblt", pytest.approx(0.5))


def test_dict_csv_is_quoted_and_headerless() -> None:
    rows = parse_class_csv(V1_DICT, "dict.csv")
    assert rows[0] == ("/m/05wrt", "property")
    assert len(rows) == 12 and all('"' not in name for _, name in rows)


def test_class_descriptions_quoting() -> None:
    rows = dict(parse_class_csv(V3_CLASSES, "class-descriptions.csv"))
    assert rows["/m/02wvth"] == 'Fiat 500 "topolino"'
    assert rows["/m/03hgsf0"] == "Lemon, lime and bitters"
    assert rows["/m/03gtp5"] == "Lamb's quarters"
    assert rows["/m/025khl"] == "Spätzle"
    assert len(rows) == 15


def test_mid_only_class_lists() -> None:
    rows = parse_class_csv(V3_CLASSES_TXT, "classes.txt")
    assert [m for m, _ in rows][:2] == ["/m/0100nhbf", "/m/0104x9kv"]
    assert rows[-1][0] == "/m/010dmf" and len(rows) == 10


def test_v3_boxable_flags_come_from_classes_bbox_txt(tmp_path: Path) -> None:
    _put(tmp_path, "v3", "class_descriptions", None, V3_CLASSES)
    _put(tmp_path, "v3", "class_descriptions_boxable", None, "/m/025dyy\n/m/025fsf\n")
    with _open(tmp_path, "v3") as cat:
        assert cat.classes.boxable == {"/m/025dyy", "/m/025fsf"}
        assert cat.resolve("stapler").boxable
        assert cat.resolve('Fiat 500 "topolino"').mid == "/m/02wvth"
