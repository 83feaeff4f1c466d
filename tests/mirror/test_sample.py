"""The sample's files: official formats, real class lists, planted facts."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from collections import defaultdict
from pathlib import Path

import pytest

from oiforge.catalog.files import FILES
from oiforge.mirror.multilabel import MULTILABEL_CLASSES, SUBCLASSES
from oiforge.mirror.plan import CONTEXT_MIDS, SAMPLE_CLASSES
from oiforge.paths import package_data

IMAGE_HEADER = (
    "ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,"
    "OriginalSize,OriginalMD5,Thumbnail300KURL,Rotation"
)
LABEL_HEADER = "ImageID,Source,LabelName,Confidence"
BOX_HEADER = (
    "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,"
    "IsDepiction,IsInside"
)
XCLICK = ",XClick1X,XClick2X,XClick3X,XClick4X,XClick1Y,XClick2Y,XClick3Y,XClick4Y"


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def _facts(root: Path) -> dict:
    return json.loads((root / "sample.json").read_text(encoding="utf-8"))


def _all_files() -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for version, files in FILES.items():
        for f in files:
            out.setdefault(f.relpath, (version, f.kind))
    return out


def test_every_official_file_exists(sample_root: Path) -> None:
    for relpath in _all_files():
        assert (sample_root / "openimages" / relpath).is_file(), relpath


def test_class_lists_are_byte_identical_copies(sample_root: Path) -> None:
    meta = sample_root / "openimages"
    real = package_data("openimages")
    pairs = {
        "v7/oidv7-class-descriptions.csv": "oidv7-class-descriptions.csv",
        "v7/oidv7-class-descriptions-boxable.csv": "oidv7-class-descriptions-boxable.csv",
        "v6/oidv6-class-descriptions.csv": "oidv6-class-descriptions.csv",
        "v5/class-descriptions-boxable.csv": "class-descriptions-boxable.csv",
        "v5/class-descriptions.csv": "oidv6-class-descriptions.csv",
        "2018_04/bbox_labels_600_hierarchy.json": "bbox_labels_600_hierarchy.json",
    }
    for relpath, name in pairs.items():
        assert (meta / relpath).read_bytes() == (real / name).read_bytes(), relpath


@pytest.mark.parametrize("kind", ["images", "human_labels", "machine_labels", "boxes"])
def test_generated_files_have_official_headers_and_widths(sample_root: Path, kind: str) -> None:
    expected = {
        "images": IMAGE_HEADER,
        "human_labels": LABEL_HEADER,
        "machine_labels": LABEL_HEADER,
        "boxes": BOX_HEADER,
    }[kind]
    for relpath, (_, k) in _all_files().items():
        if k != kind:
            continue
        path = sample_root / "openimages" / relpath
        header = expected + (XCLICK if relpath == "v6/oidv6-train-annotations-bbox.csv" else "")
        first_line = path.read_bytes().split(b"\n", 1)[0].rstrip(b"\r").decode()
        assert first_line == header, relpath
        rows = _rows(path)
        width = header.count(",") + 1
        assert len(rows) > 1, relpath
        assert all(len(r) == width for r in rows), relpath


def test_label_files_sorted_and_image_files_not(sample_root: Path) -> None:
    for relpath, (_, kind) in _all_files().items():
        if kind in ("human_labels", "machine_labels", "boxes"):
            ids = [r[0] for r in _rows(sample_root / "openimages" / relpath)[1:]]
            assert ids == sorted(ids), relpath
    ids = [
        r[0]
        for r in _rows(
            sample_root / "openimages/2018_04/train/train-images-boxable-with-rotation.csv"
        )[1:]
    ]
    assert ids != sorted(ids)


def test_both_line_endings_are_present(sample_root: Path) -> None:
    endings = set()
    for relpath in _all_files():
        data = (sample_root / "openimages" / relpath).read_bytes()
        endings.add(b"\r\n" in data)
    assert endings == {True, False}


def test_value_formats(sample_root: Path) -> None:
    meta = sample_root / "openimages"
    images = _rows(meta / "2018_04/validation/validation-images-with-rotation.csv")[1:]
    assert {r[11] for r in images} <= {"", "0.0", "90.0", "180.0", "270.0"}
    assert all(r[2].startswith("https://") and r[2].endswith("_o.jpg") for r in images)
    assert any("," in r[7] or '"' in r[7] for r in images) or any(
        "," in r[6] or '"' in r[6] for r in images
    )
    human = _rows(meta / "v7/oidv7-train-annotations-human-imagelabels.csv")[1:]
    assert {r[1] for r in human} == {"verification", "crowdsource-verification"}
    assert {r[3] for r in human} == {"0", "1"}
    machine = _rows(meta / "v7/oidv7-train-annotations-machine-imagelabels.csv")[1:]
    assert {r[1] for r in machine} == {"machine"}
    assert {r[3] for r in machine} <= {f"{k / 10:.1f}" for k in range(1, 11)}
    boxes = _rows(meta / "v5/validation-annotations-bbox.csv")[1:]
    for row in boxes:
        x0, x1, y0, y1 = map(float, row[4:8])
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        assert set(row[8:13]) <= {"0", "1", "-1"}


def test_classes_are_real_and_cover_the_alphabet(sample_root: Path) -> None:
    real = dict(_rows(package_data("openimages", "oidv7-class-descriptions-boxable.csv"))[1:])
    for cls in SAMPLE_CLASSES:
        assert real[cls.mid] == cls.name
    assert all(mid in real for mid in CONTEXT_MIDS)
    letters = {c.letter for c in SAMPLE_CLASSES}
    assert len(letters) >= 22
    facts = _facts(sample_root)
    assert [c["mid"] for c in facts["classes"]] == [c.mid for c in SAMPLE_CLASSES]


def test_hamburger_is_a_sandwich_in_the_real_hierarchy(sample_root: Path) -> None:
    tree = json.loads(
        (sample_root / "openimages/2018_04/bbox_labels_600_hierarchy.json").read_text()
    )

    def find(node: dict, mid: str) -> dict | None:
        if node["LabelName"] == mid:
            return node
        return next((hit for c in node.get("Subcategory", []) if (hit := find(c, mid))), None)

    sandwich = find(tree, "/m/0l515")
    assert sandwich is not None
    children = {c["LabelName"] for c in sandwich["Subcategory"]}
    assert "/m/0cdn1" in children  # Hamburger
    assert "/m/01b9xk" not in children  # Hot dog
    set_mids = {c.mid for c in MULTILABEL_CLASSES}
    for mid in set_mids:  # the multi-label block's sub-class links are the real ones
        node = find(tree, mid)
        below = {c["LabelName"] for c in (node or {}).get("Subcategory", [])} & set_mids
        assert below == set(SUBCLASSES.get(mid, ())), mid


def test_multilabel_block_plants_every_kind_of_label(sample_root: Path) -> None:
    """Photos with several classes of the set, verified negatives, unknowns, machine labels."""
    facts = _facts(sample_root)["multilabel"]
    assert [c["mid"] for c in facts["classes"]] == [c.mid for c in MULTILABEL_CLASSES]
    photos = facts["plain"]["images"]
    assert sum(len(p["labels"]) >= 3 for p in photos.values()) >= 8
    assert sum(bool(p["negatives"]) for p in photos.values()) >= 30
    assert sum(bool(p["machine"]) for p in photos.values()) >= 5
    for mid, per in facts["plain"]["counts"].items():
        for split, n in per.items():
            assert n["positive"] > 0 and n["negative"] > 0 and n["unknown"] > 0, (mid, split)
            assert sum(n.values()) == sum(p["split"] == split for p in photos.values())
    up = facts["expand_up"]["images"]
    sandwich = "/m/0l515"
    assert sum(sandwich in p["labels"] for p in up.values()) > sum(
        sandwich in p["labels"] for p in photos.values()
    )  # a hamburger or a submarine sandwich is a sandwich


def test_sample_shape(sample_root: Path) -> None:
    facts = _facts(sample_root)
    images = facts["images"]
    assert 650 <= len(images) <= 800  # 36 classes x 15 (the six demo classes x 40) + 60 people
    splits = defaultdict(int)
    for im in images:
        splits[im["split"]] += 1
    assert splits["train"] > splits["validation"] > 0 and splits["test"] > 0
    people = {"/m/01g317", "/m/0dzct"}
    assert sum(1 for im in images if people & set(im["classes"])) > 50
    assert (
        sum(1 for im in images if len(set(im["classes"]) - people - {"/m/04yx4", "/m/03bt1vf"}) > 1)
        > 5
    )
    assert {im["orientation"] for im in images} == {1, 3, 6, 8}
    photo_ids = [im["original_url"].rsplit("/", 1)[1].split("_")[0] for im in images]
    assert len(set(photo_ids)) == len(images)  # fault globs name photo ids
    faults = {im["fault"] for im in images}
    assert {"resized_missing", "placeholder", "burst", "truncated", "wrong_bytes", "html"} <= faults


def test_image_files_match_metadata(sample_root: Path) -> None:
    facts = _facts(sample_root)
    by_id = {im["image_id"]: im for im in facts["images"]}
    for split, name in (
        ("train", "train-images-boxable-with-rotation.csv"),
        ("validation", "validation-images-with-rotation.csv"),
        ("test", "test-images-with-rotation.csv"),
    ):
        for row in _rows(sample_root / "openimages/2018_04" / split / name)[1:]:
            url = row[2]
            data = (sample_root / "flickr" / url.split("://", 1)[1]).read_bytes()
            assert len(data) == int(row[8])
            assert base64.b64encode(hashlib.md5(data).digest()).decode() == row[9]
            resized = sample_root / "open-images-dataset" / split / f"{row[0]}.jpg"
            assert resized.is_file() == by_id[row[0]]["has_resized"]
            thumb = row[10].split("://", 1)[1].split("?", 1)[0]
            assert (sample_root / "flickr" / thumb).is_file()


def test_machine_label_confirmation_rates_can_be_recomputed(sample_root: Path) -> None:
    meta = sample_root / "openimages/v7"
    human: dict[tuple[str, str], str] = {}
    machine: set[tuple[str, str]] = set()
    for split in ("train", "val", "test"):
        for row in _rows(meta / f"oidv7-{split}-annotations-human-imagelabels.csv")[1:]:
            human[(row[0], row[2])] = row[3]
        for row in _rows(meta / f"oidv7-{split}-annotations-machine-imagelabels.csv")[1:]:
            machine.add((row[0], row[2]))
    rates = _facts(sample_root)["machine_label_confirmation"]["rates"]
    for mid, planted in rates.items():
        verified = [human[k] for k in machine if k[1] == mid and k in human]
        assert verified.count("1") == planted["confirmed"], mid
        assert verified.count("0") == planted["rejected"], mid
        assert abs(verified.count("1") / len(verified) - planted["rate"]) < 1e-12
