"""The sample's classes and facts, decided from the seed before any byte is written.

The classes are real MIDs and display names from the v7 boxable list, chosen for the picture
book (concrete, kid-friendly, most letters A-Z), for the "is a hamburger a sandwich"
hierarchy question (Sandwich and its real sub-classes Hamburger and Submarine sandwich, plus
Hot dog, which is *not* under Sandwich), and for privacy filtering (Person, Man, Woman, Human
face).

One :class:`PlannedImage` per image: id, split, classes, boxes, size, EXIF orientation, Flickr
URLs, licence/author/title and the planted fault. Everything is drawn from one
``numpy.random.Generator`` in a fixed order, so the same seed gives the same plan.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import numpy as np

from oiforge.paths import package_data


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


IMAGES_PER_OBJECT_CLASS = 15
#: The classes `make demo` trains on get more images: with 15 (about 2 test photos a class
#: once photos with people are left out) a test accuracy says little; with 40, about 30 test
#: photos over the six classes.
DEMO_CLASSES = frozenset({"Apple", "Cat", "Dog", "Zebra", "Strawberry", "Penguin"})
IMAGES_PER_DEMO_CLASS = 40
PEOPLE_ONLY_IMAGES = 60
SPLIT_SHARES = (("train", 0.70), ("validation", 0.15), ("test", 0.15))
LICENSES = (
    ("https://creativecommons.org/licenses/by/2.0/", 0.85),
    ("https://creativecommons.org/licenses/by-sa/2.0/", 0.10),
    ("https://creativecommons.org/licenses/by-nd/2.0/", 0.05),
)
ASPECTS = (4 / 3, 3 / 2, 1.0, 16 / 9, 3 / 4, 2 / 3)
#: Authors and titles: the 565 real rows of ``real_attribution_rows.json`` (Flickr metadata as
#: Open Images ships it: Japanese, Korean, diacritics, HTML entities, full-width punctuation)
#: plus constructed rows in the scripts they lack (``constructed_attribution_rows.json``).
REAL_ROWS = "real_attribution_rows.json"
CONSTRUCTED_ROWS = "constructed_attribution_rows.json"
_LEGACY_CHOICES = 10  # the draws that once chose from 10 names stay, so later draws are unchanged


@lru_cache(maxsize=1)
def attribution_pool() -> tuple[tuple[str, str], ...]:
    """(author, title) pairs, real rows first, in a fixed order."""
    real = json.loads(package_data("openimages", REAL_ROWS).read_text("utf-8"))
    made = json.loads(package_data("openimages", CONSTRUCTED_ROWS).read_text("utf-8"))
    rows = [(str(v[2]), str(v[3])) for _, v in sorted(real.items())]
    return (*rows, *((str(a), str(t)) for a, t in made["rows"]))


def _drawn(rng: np.random.Generator, image_id: str, field_index: int) -> str:
    """Author (0) or title (1); draws what the old 10-name choice drew, in the same place."""
    rng.integers(_LEGACY_CHOICES)
    return attribution_for(image_id)[field_index]


def attribution_for(image_id: str) -> tuple[str, str]:
    """The (author, title) of a sample image: a pure function of its ImageID."""
    pool = attribution_pool()
    return pool[int(hashlib.sha256(image_id.encode()).hexdigest()[:12], 16) % len(pool)]


@dataclass(frozen=True)
class PlannedBox:
    """One box in upright normalized coordinates with its official flags."""

    cls: SampleClass
    x_min: float
    x_max: float
    y_min: float
    y_max: float
    source: str
    #: IsOccluded, IsTruncated, IsGroupOf, IsDepiction, IsInside (1, 0, or -1 for unknown)
    flags: tuple[int, ...]


@dataclass
class PlannedImage:
    """Facts about one sample image (mutable while planning; frozen by convention after)."""

    image_id: str
    split: str
    index: int
    classes: list[SampleClass]
    boxes: list[PlannedBox]
    width: int
    height: int
    orientation: int
    quality: int
    photo_id: int
    flickr_host: str
    original_path: str
    thumbnail_url: str
    landing_url: str
    author_profile_url: str
    author: str
    title: str
    license: str
    rotation: str
    fault: str = "none"
    expected_status: str = "ok"
    has_resized: bool = True
    negatives: list[SampleClass] = field(default_factory=list)

    @property
    def original_url(self) -> str:
        return f"https://{self.flickr_host}/{self.original_path}"


def _image_id(rng: np.random.Generator, seen: set[str]) -> str:
    while True:
        value = f"{int(rng.integers(0, 2**63)):016x}"
        if value not in seen:
            seen.add(value)
            return value


def _size(rng: np.random.Generator) -> tuple[int, int]:
    draw = rng.random()
    low, high = (1025, 1601) if draw < 0.1 else ((801, 1025) if draw < 0.35 else (480, 801))
    longest = int(rng.integers(low, high))
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
    if aspect >= 1:
        return longest, max(240, round(longest / aspect))
    return max(240, round(longest * aspect)), longest


def _box(rng: np.random.Generator, cls: SampleClass, source: str) -> PlannedBox:
    w, h = float(rng.uniform(0.25, 0.6)), float(rng.uniform(0.25, 0.6))
    x0, y0 = float(rng.uniform(0, 1 - w)), float(rng.uniform(0, 1 - h))
    flags = [int(rng.random() < p) for p in (0.4, 0.2, 0.08, 0.06, 0.03)]
    if rng.random() < 0.01:
        flags = [-1, -1, -1, -1, -1]
    return PlannedBox(cls, x0, x0 + w, y0, y0 + h, source, tuple(flags))


def _face_in(rng: np.random.Generator, person: PlannedBox) -> PlannedBox:
    w = (person.x_max - person.x_min) * 0.35
    h = (person.y_max - person.y_min) * 0.3
    x0 = person.x_min + (person.x_max - person.x_min - w) * float(rng.uniform(0.3, 0.7))
    y0 = person.y_min + (person.y_max - person.y_min) * 0.05
    return PlannedBox(HUMAN_FACE, x0, x0 + w, y0, y0 + h, person.source, (0, 0, 0, 0, 0))


def _boxes(rng: np.random.Generator, classes: list[SampleClass], split: str) -> list[PlannedBox]:
    boxes: list[PlannedBox] = []
    for cls in classes:
        if cls is HUMAN_FACE or cls is PERSON:
            continue
        for _ in range(int(rng.integers(1, 4)) if not cls.is_person else 1):
            source = "xclick" if split != "train" or rng.random() < 0.85 else "activemil"
            box = _box(rng, cls, "freeform" if split != "train" and rng.random() < 0.3 else source)
            boxes.append(box)
            if cls.is_person:
                boxes.append(PlannedBox(PERSON, *_coords(box), box.source, box.flags))
                boxes.append(_face_in(rng, box))
    return boxes


def _coords(box: PlannedBox) -> tuple[float, float, float, float]:
    return box.x_min, box.x_max, box.y_min, box.y_max


def images_per_class(cls: SampleClass) -> int:
    return IMAGES_PER_DEMO_CLASS if cls.name in DEMO_CLASSES else IMAGES_PER_OBJECT_CLASS


def _class_sets(rng: np.random.Generator) -> list[list[SampleClass]]:
    sets: list[list[SampleClass]] = []
    for cls in OBJECT_CLASSES:
        for _ in range(images_per_class(cls)):
            chosen = [cls]
            if rng.random() < 0.1:
                other = OBJECT_CLASSES[int(rng.integers(len(OBJECT_CLASSES)))]
                chosen += [other] if other is not cls else []
            if rng.random() < 0.2:
                chosen += [MAN if rng.random() < 0.5 else WOMAN, PERSON, HUMAN_FACE]
            sets.append(chosen)
    for _ in range(PEOPLE_ONLY_IMAGES):
        sets.append([MAN if rng.random() < 0.5 else WOMAN, PERSON, HUMAN_FACE])
    return sets


def _split(position: float) -> str:
    edge = 0.0
    for name, share in SPLIT_SHARES:
        edge += share
        if position < edge:
            return name
    return SPLIT_SHARES[-1][0]


def _flickr(rng: np.random.Generator, photo_id: int) -> tuple[str, str, str]:
    server = int(rng.integers(1, 8000))
    farm = int(rng.integers(1, 10))
    secret, secret_z = (f"{int(rng.integers(0, 16**10)):010x}" for _ in range(2))
    if rng.random() < 0.5:
        host, path = f"c{int(rng.integers(1, 9))}.staticflickr.com", f"{farm}/{server}"
    else:
        host, path = f"farm{farm}.staticflickr.com", f"{server}"
    thumb_host = f"c{int(rng.integers(1, 9))}.staticflickr.com"
    query = "?zz=1" if rng.random() < 0.2 else ""
    thumb = f"https://{thumb_host}/{farm}/{server}/{photo_id}_{secret_z}_z.jpg{query}"
    return host, f"{path}/{photo_id}_{secret}_o.jpg", thumb


def _pick(rng: np.random.Generator, options: tuple[tuple[str, float], ...]) -> str:
    weights = np.array([w for _, w in options])
    return options[int(rng.choice(len(options), p=weights / weights.sum()))][0]


def _plan_one(
    rng: np.random.Generator, index: int, classes: list[SampleClass], split: str, seen: set[str]
) -> PlannedImage:
    image_id = _image_id(rng, seen)
    width, height = _size(rng)
    orientation = int(rng.choice([1, 6, 3, 8], p=[0.88, 0.06, 0.03, 0.03]))
    photo_id = int(rng.integers(10**8, 10**11))
    host, path, thumb = _flickr(rng, photo_id)
    user = f"user{int(rng.integers(10**4, 10**8))}@N0{int(rng.integers(0, 9))}"
    rotation = "" if rng.random() < 0.05 else f"{_ROT[orientation]:.1f}"
    negatives = [c for c in SAMPLE_CLASSES if c not in classes]
    chosen_neg = [negatives[int(i)] for i in rng.choice(len(negatives), size=2, replace=False)]
    return PlannedImage(
        image_id=image_id, split=split, index=index, classes=classes,
        boxes=_boxes(rng, classes, split), width=width, height=height,
        orientation=orientation, quality=int(rng.integers(85, 96)), photo_id=photo_id,
        flickr_host=host, original_path=path, thumbnail_url=thumb,
        landing_url=f"https://www.flickr.com/photos/{user}/{photo_id}",
        author_profile_url=f"https://www.flickr.com/people/{user}/",
        author=_drawn(rng, image_id, 0), title=_drawn(rng, image_id, 1),
        license=_pick(rng, LICENSES), rotation=rotation, negatives=chosen_neg,
    )  # fmt: skip


def _stratified_positions(rng: np.random.Generator, count: int) -> list[float]:
    """A position in [0, 1) per image, spread evenly within each class's block of images
    (the object classes' blocks, then blocks of ``IMAGES_PER_OBJECT_CLASS`` people images)."""
    blocks = [images_per_class(cls) for cls in OBJECT_CLASSES]
    positions: list[float] = []
    start = 0
    while start < count:
        size = min(blocks.pop(0) if blocks else IMAGES_PER_OBJECT_CLASS, count - start)
        positions += [(int(k) + 0.5) / size for k in rng.permutation(size)]
        start += size
    return positions


_ROT = {1: 0.0, 3: 180.0, 6: 90.0, 8: 270.0}


def plan_images(seed: int) -> list[PlannedImage]:
    """All images of the sample, in metadata-file order (not sorted by ImageID)."""
    rng = np.random.default_rng(seed)
    class_sets = _class_sets(rng)
    positions = _stratified_positions(rng, len(class_sets))
    seen: set[str] = set()
    images = [
        _plan_one(rng, i, cs, _split(float(positions[i])), seen) for i, cs in enumerate(class_sets)
    ]
    order = rng.permutation(len(images))
    return [images[int(i)] for i in order]
