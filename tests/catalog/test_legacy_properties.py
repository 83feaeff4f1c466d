"""Property tests for the v1-v3 CSV and tarball parsing (hypothesis).

- any ``images.csv`` row a standard CSV writer produces (commas, quotes, line breaks and
  any Unicode in titles and authors) is read back with the exact values;
- ``dict.csv`` as v1 writes it (every field quoted) parses back to the same pairs;
- a tarball gives exactly the wanted members, whatever else it holds and in any order, and
  never writes outside the paths the caller named.
"""

from __future__ import annotations

import csv
import io
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oiforge.catalog import open_catalog
from oiforge.catalog.classes import parse_class_csv
from oiforge.catalog.files import official_files
from oiforge.catalog.legacy import extract_members, member_key
from oiforge.mirror.legacy import dict_csv, tar_gz

HEADER = (
    "ImageID", "Subset", "OriginalURL", "OriginalLandingURL", "License", "AuthorProfileURL",
    "Author", "Title", "OriginalSize", "OriginalMD5", "Thumbnail300KURL",
)  # fmt: skip
_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=40
)
_ID = st.integers(0, 2**64 - 1).map(lambda n: f"{n:016x}")
_MID = st.from_regex(r"/m/0[0-9a-z_]{1,8}", fullmatch=True)
_SETTINGS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def image_rows(draw: st.DrawFn) -> list[list[str]]:
    ids = draw(st.lists(_ID, min_size=1, max_size=5, unique=True))
    return [
        [i, "train", f"https://c1.staticflickr.com/1/2/{i}_o.jpg", f"https://www.flickr.com/p/{i}",
         "https://creativecommons.org/licenses/by/2.0/", draw(_TEXT), draw(_TEXT), draw(_TEXT),
         str(draw(st.integers(0, 2**40))), "KFukvivpCM5QXl5SqKe41g==", draw(_TEXT)]
        for i in ids
    ]  # fmt: skip


def _write_csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


@pytest.mark.slow
@_SETTINGS
@given(rows=image_rows(), version=st.sampled_from(["v1", "v2", "v3"]))
def test_images_csv_round_trips(
    tmp_path_factory: object, rows: list[list[str]], version: str
) -> None:
    home: Path = tmp_path_factory.mktemp("home")  # type: ignore[attr-defined]
    f = official_files(version, ("images",), ("train",))[0]
    path = home / "metadata" / f.relpath
    path.parent.mkdir(parents=True)
    path.write_bytes(_write_csv(rows))
    with open_catalog(version, home=home, fetch_missing=False) as cat:
        got = cat.connection.sql(
            "SELECT image_id, author_profile_url, author, title, original_size, thumbnail_url "
            "FROM images ORDER BY image_id"
        ).fetchall()
    want = sorted((r[0], r[5], r[6], r[7], int(r[8]), r[10]) for r in rows)
    # an empty unquoted field reads as NULL, which is what an empty field means
    assert [tuple(v if v is not None else "" for v in g) for g in got] == want


@given(pairs=st.dictionaries(_MID, _TEXT.filter(lambda s: s.strip() == s and s), min_size=1))
def test_dict_csv_round_trips(pairs: dict[str, str]) -> None:
    text = dict_csv(pairs.items()).decode("utf-8")
    assert all(line.startswith('"/m/') for line in text.splitlines() if line.startswith('"/'))
    assert parse_class_csv(text, "dict.csv") == [(m, n.lower()) for m, n in pairs.items()]


_NAME = st.from_regex(r"(\./)?[a-z0-9_]{1,8}(/[a-z0-9_.-]{1,8}){0,2}", fullmatch=True)


@_SETTINGS
@given(
    members=st.dictionaries(_NAME, st.binary(max_size=64), min_size=1, max_size=6),
    data=st.data(),
)
def test_tarball_gives_exactly_the_wanted_members(
    tmp_path_factory: object, members: dict[str, bytes], data: st.DataObject
) -> None:
    root: Path = tmp_path_factory.mktemp("x")  # type: ignore[attr-defined]
    by_key = {member_key(n): b for n, b in members.items()}
    if len(by_key) != len(members):
        return  # two spellings of one path: a real tarball would not hold both
    wanted_keys = data.draw(st.sets(st.sampled_from(sorted(by_key))))
    tar_path = root / "a.tar.gz"
    tar_path.write_bytes(tar_gz(members))
    wanted = {k: root / "out" / f"f{i}" for i, k in enumerate(sorted(wanted_keys))}
    digests = extract_members(tar_path, wanted)
    assert set(digests) == set(wanted_keys)
    for key, dest in wanted.items():
        assert dest.read_bytes() == by_key[key]
    written = {p for p in (root / "out").rglob("*") if p.is_file()} if wanted else set()
    assert written == set(wanted.values()) | {p.with_name(p.name + ".md5") for p in wanted.values()}


def test_hostile_members_are_never_followed(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        link = tarfile.TarInfo("2017_11/train/images.csv")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        evil = tarfile.TarInfo("../../escape.csv")
        evil.size = 3
        tar.addfile(evil, io.BytesIO(b"bad"))
    tar_path = tmp_path / "evil.tar"
    tar_path.write_bytes(raw.getvalue())
    dest = tmp_path / "cache" / "images.csv"
    got = extract_members(tar_path, {"2017_11/train/images.csv": dest})
    assert got == {} and not dest.exists()  # a link is not the member
    assert not (tmp_path.parent / "escape.csv").exists()
    assert not (tmp_path.parent.parent / "escape.csv").exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["evil.tar"]


def _serve_tarballs(root: Path, tarballs: dict[str, bytes]) -> None:
    for relpath, data in tarballs.items():
        path = root / "openimages" / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_bad_tarballs_are_per_file_failures(tmp_path: Path) -> None:
    from oiforge.catalog import fetch
    from oiforge.endpoints import Endpoints
    from oiforge.mirror import MirrorServer

    header = b"ImageID,Source,LabelName,Confidence\n0000000000000001,verification,/m/0k4j,1\n"
    members = {f"2017_11/{s}/annotations-human.csv": header for s in ("train", "validation")}
    _serve_tarballs(
        tmp_path / "srv",
        {
            "2017_11/annotations_human_2017_11.tar.gz": tar_gz(members),  # no test member
            "2017_07/annotations_human_2017_07.tar.gz": b"<html>not a tarball</html>",
        },
    )
    home = tmp_path / "home"
    with MirrorServer(tmp_path / "srv") as srv:
        ep = Endpoints.for_mirror(srv.url)
        v3 = {r.file.split: r for r in fetch("v3", ["human_labels"], endpoints=ep, home=home)}
        v2 = fetch("v2", ["human_labels"], endpoints=ep, home=home)
    assert {s: r.status for s, r in v3.items()} == {
        "train": "fetched", "validation": "cached", "test": "failed",
    }  # fmt: skip
    assert "no member '2017_11/test/annotations-human.csv'" in (v3["test"].error or "")
    assert v3["train"].path.read_bytes() == header
    assert [r.status for r in v2] == ["failed"] * 3
    assert all("not a readable tarball" in (r.error or "") for r in v2)
    # an unreadable tarball is not kept; one that lacks a member is (fetching it again
    # would not add the member), so a rerun still finds its other members
    assert [p.name for p in home.rglob("*.tar.gz")] == ["annotations_human_2017_11.tar.gz"]


def test_unwritable_cache_is_not_blamed_on_the_tarball(tmp_path: Path) -> None:
    from oiforge.errors import StageError

    tar_path = tmp_path / "a.tar.gz"
    tar_path.write_bytes(tar_gz({"2017_11/train/images.csv": b"ImageID\n"}))
    (tmp_path / "blocker").write_bytes(b"")  # a file where the cache wants a folder
    seen: list[tuple[str, int, int]] = []
    with pytest.raises(StageError, match="cannot write"):
        extract_members(tar_path, {"2017_11/train/images.csv": tmp_path / "blocker" / "x.csv"})
    got = extract_members(
        tar_path,
        {"2017_11/train/images.csv": tmp_path / "ok" / "x.csv"},
        lambda m, done, total: seen.append((m, done, total)),
    )
    assert list(got) == ["2017_11/train/images.csv"]
    assert seen == [("2017_11/train/images.csv", 8, 8)]
