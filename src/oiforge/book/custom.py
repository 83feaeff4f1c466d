"""Inputs beyond the catalog: custom classes from local folders, and the review overrides file.

Overrides (YAML), written after looking at a draft book::

    drop: [0a1b2c3d4e5f6a7b, ...]        # never print these ImageIDs
    force:                               # print these first for a letter (if people-free)
      A: [1f2e3d4c5b6a7980]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from oiforge.book.model import LetterPlan, Photo
from oiforge.book.words import label_of, letter_of
from oiforge.contracts import is_image_id
from oiforge.errors import InvalidInputError, SpecError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MAX_LOCAL_PHOTOS = 16
MAX_LOCAL_BYTES = 64 * 1024 * 1024
LOCAL_LICENCE = "private photo, used with permission"


@dataclass(frozen=True)
class CustomClass:
    """A page made from your own photos: ``Family=./photos/family``."""

    name: str
    folder: Path
    letter: str


def parse_custom(text: str) -> CustomClass:
    """``NAME=FOLDER`` (the page's letter is the name's first letter)."""
    name, sep, folder = text.partition("=")
    name = name.strip()
    letter = letter_of(name) if name else None
    if not sep or not folder.strip() or letter is None:
        raise InvalidInputError(
            f"--custom {text!r}: write NAME=FOLDER with a name starting with A-Z, "
            "e.g. Family=./photos/family"
        )
    path = Path(folder.strip()).expanduser()
    if not path.is_dir():
        raise InvalidInputError(f"--custom {name}: {path} is not a folder")
    return CustomClass(name, path.resolve(), letter)


def _local_photo(path: Path) -> Photo | None:
    try:
        if path.stat().st_size > MAX_LOCAL_BYTES:
            return None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
    return Photo(
        image_id=f"local-{digest[:16]}",
        source="local",
        path=str(path),
        sha256=digest,
        title=path.stem,
        license=LOCAL_LICENCE,
    )


def custom_letter(custom: CustomClass) -> LetterPlan:
    """The letter page of a custom class: its folder's photos, sorted by file name."""
    files = sorted(
        p for p in custom.folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
    )
    photos = [p for p in (_local_photo(f) for f in files[: 2 * MAX_LOCAL_PHOTOS]) if p]
    unique = list({p.image_id: p for p in reversed(photos)}.values())[::-1]
    return LetterPlan(
        letter=custom.letter,
        label=label_of(custom.name),
        class_name=custom.name,
        photos=tuple(unique[:MAX_LOCAL_PHOTOS]),
    )


@dataclass(frozen=True)
class Overrides:
    """Photos to drop everywhere and to force (first) per letter."""

    drop: frozenset[str] = frozenset()
    force: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _ids(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(is_image_id(v) for v in value):
        raise SpecError(f"{where}: a list of ImageIDs (16 hex characters)")
    return tuple(value)


def load_overrides(path: str | Path) -> Overrides:
    """Read the overrides YAML; anything unexpected is a ``SpecError`` naming the key."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"overrides file {p}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"overrides file {p}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or set(data) - {"drop", "force"}:
        raise SpecError(f"overrides file {p}: only `drop:` and `force:` are allowed")
    drop = frozenset(_ids(data.get("drop", []), f"{p}: drop"))
    force_raw = data.get("force", {}) or {}
    if not isinstance(force_raw, dict):
        raise SpecError(f"{p}: force: a mapping LETTER: [ImageID, ...]")
    force: dict[str, tuple[str, ...]] = {}
    for key, value in force_raw.items():
        letter = str(key).strip().upper()
        if len(letter) != 1 or not "A" <= letter <= "Z":
            raise SpecError(f"{p}: force: {key!r} is not a letter A-Z")
        force[letter] = _ids(value, f"{p}: force: {letter}")
    return Overrides(drop, force)
