"""The official Open Images metadata files per version: relative path, size and MD5.

Paths are relative to the metadata base (default ``https://storage.googleapis.com/openimages``).
Sizes and MD5s come from the maintainers' records (see ``data/openimages/SOURCES.md``);
``None`` where no trustworthy record exists, in which case ``fetch`` verifies against the
server's ``x-goog-hash`` / ``Content-MD5`` header when one is sent.

Kinds: ``class_descriptions`` (all classes), ``class_descriptions_boxable`` (600),
``hierarchy`` (JSON), ``images`` (image metadata, per split), ``human_labels`` and
``machine_labels`` (image-level labels, per split), ``boxes`` (per split).

The first releases (v1 2016_08, v2 2017_07, v3 2017_11) ship their CSVs inside ``.tar.gz``
archives: such a file names its :class:`Archive` and the member path inside it, and ``relpath``
is where the extracted member lives in the cache (see ``catalog/legacy.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from oiforge.errors import UserError


@dataclass(frozen=True)
class Archive:
    """A ``.tar.gz`` of the first releases: relpath under the metadata base, size and MD5."""

    relpath: str
    size: int | None = None
    md5_hex: str | None = None


@dataclass(frozen=True)
class OfficialFile:
    """One official metadata file (``archive``/``member``: a member of a v1-v3 tarball;
    ``url``: where it lives outside the metadata bucket, as v1's ``dict.csv`` does)."""

    version: str
    kind: str
    split: str | None
    relpath: str
    size: int | None = None
    md5_hex: str | None = None
    archive: Archive | None = None
    member: str | None = None
    url: str | None = None

    @property
    def name(self) -> str:
        return self.relpath.rsplit("/", 1)[-1]


_IMAGES_2018 = (
    (
        "train",
        "2018_04/train/train-images-boxable-with-rotation.csv",
        638407721,
        "a4ac0bcedb5c2df4d1b1230dc6b41b8f",
    ),
    (
        "validation",
        "2018_04/validation/validation-images-with-rotation.csv",
        15245485,
        "643a54e43b0bab8acce8817b4a569780",
    ),
    (
        "test",
        "2018_04/test/test-images-with-rotation.csv",
        45227339,
        "d832feb775b3cb78077bf8ae350adce5",
    ),
)
_BOXES_V6 = (
    (
        "train",
        "v6/oidv6-train-annotations-bbox.csv",
        2258447590,
        "3c3e70cfaba5757ea5c2604b19cac3b2",
    ),
    (
        "validation",
        "v5/validation-annotations-bbox.csv",
        25105048,
        "c5e8200df129ea6867e913e8b21fcab9",
    ),
    ("test", "v5/test-annotations-bbox.csv", 77484237, "1cc058a7003b4e73d47642276e9b123b"),
)
#: v6 and v7 label ~9M train images; their metadata is this file (v6 download page).
_IMAGES_V6 = (
    ("train", "v6/oidv6-train-images-with-labels-with-rotation.csv", None, None),
    _IMAGES_2018[1],
    _IMAGES_2018[2],
)
_HIERARCHY = "2018_04/bbox_labels_600_hierarchy.json"


def _files(
    version: str, rows: tuple[tuple[str, str | None, str, int | None, str | None], ...]
) -> tuple[OfficialFile, ...]:
    return tuple(OfficialFile(version, k, s, p, n, m) for k, s, p, n, m in rows)


def _split_rows(
    kind: str, rows: tuple[tuple[str, str, int | None, str | None], ...]
) -> tuple[tuple[str, str | None, str, int | None, str | None], ...]:
    return tuple((kind, s, p, n, m) for s, p, n, m in rows)


FILES: Final[dict[str, tuple[OfficialFile, ...]]] = {
    "v7": _files(
        "v7",
        (
            (
                "class_descriptions",
                None,
                "v7/oidv7-class-descriptions.csv",
                501178,
                "2aacb919b207c50f2a084822a5c2736c",
            ),
            (
                "class_descriptions_boxable",
                None,
                "v7/oidv7-class-descriptions-boxable.csv",
                12064,
                "c5e7cb6b85d0539b2105db2d1974681f",
            ),
            ("hierarchy", None, _HIERARCHY, None, None),
            *_split_rows("images", _IMAGES_V6),
            *_split_rows(
                "human_labels",
                (
                    ("train", "v7/oidv7-train-annotations-human-imagelabels.csv", None, None),
                    ("validation", "v7/oidv7-val-annotations-human-imagelabels.csv", None, None),
                    ("test", "v7/oidv7-test-annotations-human-imagelabels.csv", None, None),
                ),
            ),
            *_split_rows(
                "machine_labels",
                (
                    ("train", "v7/oidv7-train-annotations-machine-imagelabels.csv", None, None),
                    ("validation", "v7/oidv7-val-annotations-machine-imagelabels.csv", None, None),
                    ("test", "v7/oidv7-test-annotations-machine-imagelabels.csv", None, None),
                ),
            ),
            *_split_rows("boxes", _BOXES_V6),
        ),
    ),
    "v6": _files(
        "v6",
        (
            ("class_descriptions", None, "v6/oidv6-class-descriptions.csv", None, None),
            (
                "class_descriptions_boxable",
                None,
                "v5/class-descriptions-boxable.csv",
                12011,
                "9846fd22fd2e68b45e3f3810a4c2a32a",
            ),
            ("hierarchy", None, _HIERARCHY, None, None),
            *_split_rows("images", _IMAGES_V6),
            *_split_rows(
                "human_labels",
                (
                    ("train", "v6/oidv6-train-annotations-human-imagelabels.csv", None, None),
                    ("validation", "v5/validation-annotations-human-imagelabels.csv", None, None),
                    ("test", "v5/test-annotations-human-imagelabels.csv", None, None),
                ),
            ),
            *_split_rows(
                "machine_labels",
                (
                    ("train", "v5/train-annotations-machine-imagelabels.csv", None, None),
                    ("validation", "v5/validation-annotations-machine-imagelabels.csv", None, None),
                    ("test", "v5/test-annotations-machine-imagelabels.csv", None, None),
                ),
            ),
            *_split_rows("boxes", _BOXES_V6),
        ),
    ),
    "v5": _files(
        "v5",
        (
            ("class_descriptions", None, "v5/class-descriptions.csv", None, None),
            (
                "class_descriptions_boxable",
                None,
                "v5/class-descriptions-boxable.csv",
                12011,
                "9846fd22fd2e68b45e3f3810a4c2a32a",
            ),
            ("hierarchy", None, _HIERARCHY, None, None),
            *_split_rows("images", _IMAGES_2018),
            *_split_rows(
                "human_labels",
                (
                    (
                        "train",
                        "v5/train-annotations-human-imagelabels-boxable.csv",
                        376764810,
                        "f2709ae3f91391549c56d45a4a5ffec6",
                    ),
                    (
                        "validation",
                        "v5/validation-annotations-human-imagelabels-boxable.csv",
                        10649275,
                        "2e129f40a209e65dfe4342ed0e7bd5f2",
                    ),
                    (
                        "test",
                        "v5/test-annotations-human-imagelabels-boxable.csv",
                        32055857,
                        "207ed0ce2755ad5a689c8eb6eeb039bf",
                    ),
                ),
            ),
            *_split_rows(
                "boxes",
                (
                    ("train", "v5/train-annotations-bbox.csv", None, None),
                    _BOXES_V6[1],
                    _BOXES_V6[2],
                ),
            ),
        ),
    ),
    "v4": _files(
        "v4",
        (
            ("class_descriptions", None, "2018_04/class-descriptions.csv", None, None),
            (
                "class_descriptions_boxable",
                None,
                "2018_04/class-descriptions-boxable.csv",
                None,
                None,
            ),
            ("hierarchy", None, _HIERARCHY, None, None),
            *_split_rows("images", _IMAGES_2018),
            *_split_rows(
                "human_labels",
                (
                    (
                        "train",
                        "2018_04/train/train-annotations-human-imagelabels-boxable.csv",
                        None,
                        None,
                    ),
                    (
                        "validation",
                        "2018_04/validation/validation-annotations-human-imagelabels-boxable.csv",
                        None,
                        None,
                    ),
                    (
                        "test",
                        "2018_04/test/test-annotations-human-imagelabels-boxable.csv",
                        None,
                        None,
                    ),
                ),
            ),
            *_split_rows(
                "boxes",
                (
                    (
                        "train",
                        "2018_04/train/train-annotations-bbox.csv",
                        1194033454,
                        "dc89115275ad6d0c771bd6590aa71ac3",
                    ),
                    (
                        "validation",
                        "2018_04/validation/validation-annotations-bbox.csv",
                        None,
                        None,
                    ),
                    ("test", "2018_04/test/test-annotations-bbox.csv", None, None),
                ),
            ),
        ),
    ),
}


def official_files(
    version: str, kinds: tuple[str, ...] | None = None, splits: tuple[str, ...] | None = None
) -> tuple[OfficialFile, ...]:
    """The official files of ``version``, optionally only some kinds/splits."""
    table = {**FILES, **LEGACY_FILES}
    if version not in table:
        known = ", ".join(sorted(table))
        raise UserError(f"unknown Open Images version {version!r}; known: {known}")
    _check_known("kind", kinds, KINDS)
    _check_known("split", splits, ("train", "validation", "test"))
    return tuple(
        f
        for f in table[version]
        if (kinds is None or f.kind in kinds)
        and (splits is None or f.split is None or f.split in splits)
    )


#: every kind of official file.
KINDS: Final = (
    "class_descriptions",
    "class_descriptions_boxable",
    "hierarchy",
    "images",
    "human_labels",
    "machine_labels",
    "boxes",
)


def _check_known(what: str, given: tuple[str, ...] | None, known: tuple[str, ...]) -> None:
    bad = sorted(set(given or ()) - set(known))
    if bad:
        raise UserError(f"unknown {what}(s) {', '.join(bad)}; known: {', '.join(known)}")


# -- v1-v3: CSVs inside tarballs ---------------------------------------------------------------
# Tarball sizes/MD5s as recorded by dnuffer/open_images_downloader (DatasetMetadata.scala);
# members as the READMEs and the tarballs lay them out (v2/v3 unpack into ``2017_07/`` and
# ``2017_11/``; v1 into ``images_2016_08/``, ``machine_ann_2016_08/``, ``human_ann_2016_08/``).
#: v1's class list lives in the GitHub repository, not in the bucket.
V1_DICT_URL: Final = "https://raw.githubusercontent.com/openimages/dataset/master/dict.csv"
_V1_ARCHIVES = {
    "images": Archive(
        "2016_08/images_2016_08_v5.tar.gz", 1038144161, "0e47566d03759f0b69cf4a3fba29592c"
    ),
    "machine_labels": Archive(
        "2016_08/machine_ann_2016_08_v3.tar.gz", 470893902, "48a2b164a2998f4da5a78be5655bc1fb"
    ),
    "human_labels": Archive(
        "2016_08/human_ann_2016_08_v3.tar.gz", 9718729, "ac549b4cc3179309a7b41b81e96c07dc"
    ),
}
_V1_MEMBERS = {
    "images": ("images_2016_08", "images.csv", ("train", "validation")),
    "machine_labels": ("machine_ann_2016_08", "labels.csv", ("train", "validation")),
    "human_labels": ("human_ann_2016_08", "labels.csv", ("validation",)),
}
#: v2/v3 (kind -> (archive stem, member file name)); ``None`` = one file, not per split.
_V23_MEMBERS: Final = {
    "images": ("images", "images.csv"),
    "boxes": ("annotations_human_bbox", "annotations-human-bbox.csv"),
    "human_labels": ("annotations_human", "annotations-human.csv"),
    "machine_labels": ("annotations_machine", "annotations-machine.csv"),
    "class_descriptions": ("classes", "class-descriptions.csv"),
    "class_descriptions_boxable": ("classes", "classes-bbox.txt"),
}
_V23_ARCHIVES: Final = {
    "2017_07": {
        "images": (1038132176, "9c7d7d1b9c19f72c77ac0fa8e2695e00"),
        "annotations_human_bbox": (38732419, "3c57bff20c56e50025e16562c4c0d709"),
        "annotations_human": (69263638, "27610fb9d349b728448507beec244e9f"),
        "annotations_machine": (468937924, "c19b3fc5059ac13431b085c3e5df08af"),
        "classes": (300021, "a51205f02faf3867ae2d3e8dc968fd6d"),
    },
    "2017_11": {
        "images": (1038133015, "d840296342470becab9db7228bda86cc"),
        "annotations_human_bbox": (102011131, "427faa2f208ab358bed6a7f380a99493"),
        "annotations_human": (144102834, "cdcbb5e9aba900530c85cb370564f599"),
        "annotations_machine": (468938323, "493e0e17f8bbb1dd1bf778b24aa11a84"),
        "classes": (303055, "3937f6dddf777ca912c816d5f6ffe06f"),
    },
}
#: the release each early version's files are dated by (their bucket folder).
LEGACY_RELEASES: Final = {"v1": "2016_08", "v2": "2017_07", "v3": "2017_11"}


def _v1_files() -> tuple[OfficialFile, ...]:
    out = [OfficialFile("v1", "class_descriptions", None, "2016_08/dict.csv", url=V1_DICT_URL)]
    out.append(OfficialFile("v1", "hierarchy", None, _HIERARCHY))
    for kind, (top, name, splits) in _V1_MEMBERS.items():
        for split in splits:
            member = f"{top}/{split}/{name}"
            out.append(
                OfficialFile("v1", kind, split, f"2016_08/{member}",
                             archive=_V1_ARCHIVES[kind], member=member)
            )  # fmt: skip
    return tuple(out)


def _v23_files(version: str, date: str) -> tuple[OfficialFile, ...]:
    out = [OfficialFile(version, "hierarchy", None, _HIERARCHY)]
    for kind, (stem, name) in _V23_MEMBERS.items():
        size, md5 = _V23_ARCHIVES[date][stem]
        archive = Archive(f"{date}/{stem}_{date}.tar.gz", size, md5)
        per_split = not kind.startswith("class_")
        for split in ("train", "validation", "test") if per_split else (None,):
            member = f"{date}/{split}/{name}" if split else f"{date}/{name}"
            out.append(OfficialFile(version, kind, split, member, archive=archive, member=member))
    return tuple(out)


LEGACY_FILES: Final[dict[str, tuple[OfficialFile, ...]]] = {
    "v3": _v23_files("v3", "2017_11"),
    "v2": _v23_files("v2", "2017_07"),
    "v1": _v1_files(),
}
