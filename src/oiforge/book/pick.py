"""Choose the printed photos of each letter from its candidates (after download).

Candidates are tried in plan order; a photo is dropped (with a reason) when its file is
missing or broken, when it is too small, or when it already appears in the book or nearly
duplicates one that does. Among the rest, large and sharp photos win; ties keep plan order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from oiforge.book.geometry import grid_size
from oiforge.book.images import LoadedPhoto, dhash, grey_thumb, hamming, load_photo, sharpness
from oiforge.book.model import LetterPlan

MIN_SIDE_PX = 96  # below this a photo is not worth printing at any size
NEAR_DUPLICATE_BITS = 4
SHARP_ENOUGH = 150.0  # Laplacian variance at which sharpness stops adding to the score


@dataclass(frozen=True)
class Dropped:
    """A candidate that is not printed, and why."""

    letter: str
    image_id: str
    reason: str


@dataclass(frozen=True)
class PrintedLetter:
    """A letter page: the plan entry and its loaded, cropped photos in print order."""

    entry: LetterPlan
    photos: tuple[LoadedPhoto, ...]


@dataclass
class _Seen:
    ids: set[str] = field(default_factory=set)
    hashes: list[int] = field(default_factory=list)

    def duplicate_of(self, photo: LoadedPhoto, digest: int) -> str:
        if photo.photo.image_id in self.ids:
            return "already printed for another letter"
        if any(hamming(digest, h) <= NEAR_DUPLICATE_BITS for h in self.hashes):
            return "near-duplicate of a printed photo"
        return ""


@dataclass(frozen=True)
class _Candidate:
    loaded: LoadedPhoto
    digest: int
    sharpness: float

    def score(self, needed_px: float) -> float:
        size = min(1.0, self.loaded.side / needed_px) if needed_px > 0 else 1.0
        sharp = min(1.0, self.sharpness / SHARP_ENOUGH)
        return round(0.7 * size + 0.3 * sharp, 6)


def _check(
    loaded: LoadedPhoto, seen: _Seen, local_hashes: list[int]
) -> tuple[str, _Candidate | None]:
    if loaded.error:
        return loaded.error, None
    if loaded.image is None or loaded.side < MIN_SIDE_PX:
        return f"too small ({loaded.side} px)", None
    thumb = grey_thumb(loaded.image)
    cand = _Candidate(loaded, dhash(thumb), sharpness(thumb))
    reason = seen.duplicate_of(loaded, cand.digest)
    if not reason and any(hamming(cand.digest, h) <= NEAR_DUPLICATE_BITS for h in local_hashes):
        reason = "near-duplicate of a photo of the same letter"
    return reason, cand


def _usable(
    entry: LetterPlan, store: Path | None, seen: _Seen, dropped: list[Dropped], limit: int
) -> list[_Candidate]:
    usable: list[_Candidate] = []
    for photo in entry.photos:
        if len(usable) >= limit:  # bounded work per letter: enough good ones to rank
            break
        reason, cand = _check(load_photo(photo, store), seen, [c.digest for c in usable])
        if reason or cand is None:
            dropped.append(Dropped(entry.letter, photo.image_id, reason))
            continue
        usable.append(cand)
    return usable


def pick_letter(
    entry: LetterPlan,
    store: Path | None,
    seen: _Seen,
    dropped: list[Dropped],
    max_photos: int,
    needed_px: Callable[[int], float],
) -> PrintedLetter | None:
    """The printed photos of one letter (``None`` when none is usable)."""
    usable = _usable(entry, store, seen, dropped, limit=max(2 * max_photos, 4))
    count = grid_size(len(usable), max_photos)
    if count == 0:
        return None
    need = needed_px(count)
    ranked = sorted(range(len(usable)), key=lambda i: (-usable[i].score(need), i))
    chosen = [usable[i] for i in ranked[:count]]
    for i in ranked[count:]:
        dropped.append(Dropped(entry.letter, usable[i].loaded.photo.image_id, "not needed"))
    for cand in chosen:
        seen.ids.add(cand.loaded.photo.image_id)
        seen.hashes.append(cand.digest)
    return PrintedLetter(entry, tuple(c.loaded for c in chosen))


def pick_printed(
    letters: tuple[LetterPlan, ...],
    store: Path | None,
    max_photos: int,
    needed_px: Callable[[int], float],
    on_letter: Callable[[str], None] | None = None,
) -> tuple[list[PrintedLetter], list[Dropped]]:
    """Printed photos for every letter; letters without a usable photo are left out."""
    seen, dropped, printed = _Seen(), list[Dropped](), list[PrintedLetter]()
    for entry in letters:
        page = pick_letter(entry, store, seen, dropped, max_photos, needed_px)
        if page is not None:
            printed.append(page)
        else:
            dropped.append(Dropped(entry.letter, "", "no usable photo: letter left out"))
        if on_letter:
            on_letter(entry.letter)
    return printed, dropped
