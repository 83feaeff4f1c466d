"""Class choice: for each letter, candidate classes ranked by kid-friendliness and positives.

A class is a candidate for the letter its printed label starts with, unless it shows people,
is on the blocked list, or has too few human-verified positive images. Score: log10 of the
positives, plus a bonus of ``KID_BONUS`` decades for a kid-friendly concrete noun, so a
kid-friendly class with 100 positives beats an abstract one with 90,000.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from oiforge.book.words import BLOCKED_NAMES, KID_FRIENDLY, label_of, letter_of
from oiforge.errors import InvalidInputError

KID_BONUS = 3.0


@dataclass(frozen=True)
class ClassCandidate:
    """A class that could be a letter's page."""

    mid: str
    name: str
    positives: int

    @property
    def label(self) -> str:
        return label_of(self.name)

    @property
    def letter(self) -> str | None:
        return letter_of(self.name)

    @property
    def is_kid_friendly(self) -> bool:
        return self.name.lower() in KID_FRIENDLY

    @property
    def score(self) -> float:
        return math.log10(1 + self.positives) + (KID_BONUS if self.is_kid_friendly else 0.0)


def _sort_key(c: ClassCandidate) -> tuple[float, str, str]:
    return (-c.score, c.label.lower(), c.mid)


def rank_classes(
    classes: Iterable[tuple[str, str]],
    positives: Mapping[str, int],
    excluded: set[str],
    min_positives: int = 1,
) -> dict[str, list[ClassCandidate]]:
    """Per letter, its candidate classes, best first; one class per printed label."""
    by_label: dict[str, ClassCandidate] = {}
    for mid, name in classes:
        cand = ClassCandidate(mid, name, int(positives.get(mid, 0)))
        if mid in excluded or name.lower() in BLOCKED_NAMES or cand.letter is None:
            continue
        if cand.positives < min_positives:
            continue
        key = cand.label.lower()
        if key not in by_label or _sort_key(cand) < _sort_key(by_label[key]):
            by_label[key] = cand
    ranked: dict[str, list[ClassCandidate]] = {}
    for cand in sorted(by_label.values(), key=_sort_key):
        assert cand.letter is not None
        ranked.setdefault(cand.letter, []).append(cand)
    return ranked


def parse_letter_map(text: str, what: str = "--pick") -> dict[str, str]:
    """``A=Apple,B=Bird`` -> ``{"A": "Apple", "B": "Bird"}`` (letters upper-cased)."""
    out: dict[str, str] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        letter, sep, value = item.partition("=")
        letter, value = letter.strip().upper(), value.strip()
        if not sep or len(letter) != 1 or not "A" <= letter <= "Z" or not value:
            raise InvalidInputError(f"{what} {item!r}: write LETTER=Class, e.g. A=Apple,B=Bird")
        if letter in out:
            raise InvalidInputError(f"{what}: letter {letter} given twice")
        out[letter] = value
    return out


def parse_letters(text: str, what: str = "--skip") -> tuple[str, ...]:
    """``X,Q`` -> ``("Q", "X")``."""
    letters = {p.strip().upper() for p in text.split(",") if p.strip()}
    bad = sorted(x for x in letters if len(x) != 1 or not "A" <= x <= "Z")
    if bad:
        raise InvalidInputError(f"{what}: not letters A-Z: {', '.join(bad)}")
    return tuple(sorted(letters))
