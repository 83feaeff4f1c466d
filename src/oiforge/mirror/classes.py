"""The classes of the mirror sample: real MIDs and display names from the v7 boxable list.

Chosen for the picture book (concrete, kid-friendly, most letters A-Z), for the
"is a hamburger a sandwich" hierarchy question (Sandwich and its real sub-classes Hamburger
and Submarine sandwich, plus Hot dog, which is *not* under Sandwich), and for privacy
filtering (Person, Man, Woman, Human face).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class SampleClass:
    """One class of the sample: MID, v7 display name, and whether it is a people class."""

    mid: str
    name: str
    is_person: bool = False

    @property
    def letter(self) -> str:
        return self.name[0].upper()


_OBJECTS: Final = (
    ("/m/014j1m", "Apple"),
    ("/m/018xm", "Ball (Object)"),
    ("/m/09qck", "Banana"),
    ("/m/01dws", "Bear"),
    ("/m/01yrx", "Cat"),
    ("/m/0bt9lr", "Dog"),
    ("/m/09ddx", "Duck"),
    ("/m/0bwd_0j", "Elephant"),
    ("/m/0ch_cf", "Fish"),
    ("/m/09ld4", "Frog"),
    ("/m/03bk1", "Giraffe"),
    ("/m/03fwl", "Goat"),
    ("/m/0cdn1", "Hamburger"),
    ("/m/0cl4p", "Hedgehog"),
    ("/m/03k3r", "Horse"),
    ("/m/01b9xk", "Hot dog"),
    ("/m/0cxn2", "Ice cream"),
    ("/m/0d8zb", "Jellyfish"),
    ("/m/02zt3", "Kite"),
    ("/m/04cp_", "Koala"),
    ("/m/096mb", "Lion"),
    ("/m/08pbxl", "Monkey"),
    ("/m/01llwg", "Necklace"),
    ("/m/09d5_", "Owl"),
    ("/m/05z6w", "Penguin"),
    ("/m/0663v", "Pizza"),
    ("/m/06mf6", "Rabbit"),
    ("/m/0l515", "Sandwich"),
    ("/m/0f9_l", "Snail"),
    ("/m/07fbm7", "Strawberry"),
    ("/m/06pcq", "Submarine sandwich"),
    ("/m/07dm6", "Tiger"),
    ("/m/0hnnb", "Umbrella"),
    ("/m/07y_7", "Violin"),
    ("/m/0kpqd", "Watermelon"),
    ("/m/0898b", "Zebra"),
)
_PEOPLE: Final = (
    ("/m/01g317", "Person"),
    ("/m/04yx4", "Man"),
    ("/m/03bt1vf", "Woman"),
    ("/m/0dzct", "Human face"),
)

OBJECT_CLASSES: Final = tuple(SampleClass(m, n) for m, n in _OBJECTS)
PEOPLE_CLASSES: Final = tuple(SampleClass(m, n, is_person=True) for m, n in _PEOPLE)
SAMPLE_CLASSES: Final = OBJECT_CLASSES + PEOPLE_CLASSES
PERSON, MAN, WOMAN, HUMAN_FACE = PEOPLE_CLASSES

#: Real boxable MIDs used only as unverified machine labels (context, never human-verified).
CONTEXT_MIDS: Final = ("/m/02wbm", "/m/05s2s", "/m/0jbk", "/m/07j7r", "/m/01_bhs", "/m/0c9ph5")
