"""Small multi-label datasets in the layout ``oiforge build --task multilabel --format
webdataset`` writes: ``wds/<split>-000000.tar`` with ``<key>.jpg`` + ``<key>.json`` (class
indexes of the verified positives and negatives, their MIDs, the attribution),
``classes.json`` ``{"task": "multilabel", ...}`` and a multi-label ``manifest.parquet``.

Each photo shows the shapes of the classes it has (``tests/train/synthetic.py``'s colours
and shapes); a class it lacks is a verified negative or unknown; ``hidden`` draws a class
but leaves its label unknown (an unverified label that is really there).
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from oiforge.contracts.dataset import ClassInfo, write_classes, write_manifest

COLOURS = [(220, 40, 40), (40, 70, 220), (40, 180, 60), (200, 180, 30), (150, 40, 170)]
SPLITS = {"train": 24, "val": 10, "test": 10}


@dataclass(frozen=True)
class Photo:
    image_id: str
    split: str
    positives: tuple[int, ...]
    negatives: tuple[int, ...]
    drawn: tuple[int, ...]  # what the picture shows (positives + hidden ones)
    attribution: dict[str, str] = field(default_factory=dict)


def draw_scene(drawn: tuple[int, ...], rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A grey noisy background with one filled square per drawn class, in its colour."""
    w, h = size
    img = Image.new("RGB", size, tuple(rng.randint(110, 150) for _ in range(3)))  # type: ignore[arg-type]
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        draw.line((rng.randint(0, w), rng.randint(0, h), rng.randint(0, w), rng.randint(0, h)))
    for c in drawn:
        s = rng.randint(h // 4, h // 3)
        x0, y0 = rng.randint(0, w - s), rng.randint(0, h - s)
        draw.rectangle((x0, y0, x0 + s, y0 + s), fill=COLOURS[c % len(COLOURS)])
    return img


def plan_photos(
    classes: int, splits: dict[str, int], seed: int, negative_rate: float, hidden_rate: float
) -> list[Photo]:
    """Photos with 1-2 classes each; every other class verified absent at ``negative_rate``
    (else unknown), and drawn-but-unknown at ``hidden_rate``."""
    rng = random.Random(seed)
    photos = []
    for split, n in splits.items():
        for i in range(n):
            present = {i % classes} | ({rng.randrange(classes)} if rng.random() < 0.4 else set())
            others = [c for c in range(classes) if c not in present]
            hidden = tuple(c for c in others if rng.random() < hidden_rate)
            negatives = tuple(c for c in others if c not in hidden and rng.random() < negative_rate)
            drawn = tuple(sorted(present | set(hidden)))
            image_id = f"{rng.getrandbits(64):016x}"
            positives = tuple(sorted(present))
            photos.append(Photo(image_id, split, positives, negatives, drawn, attribution(i)))
    return photos


def attribution(i: int) -> dict[str, str]:
    return {
        "license": "https://creativecommons.org/licenses/by/2.0/",
        "author": f"Photographer {i} ☺",
        "author_profile_url": f"https://www.flickr.com/people/{i}/",
        "title": f"Scene <{i}> & friends",
        "landing_url": f"https://www.flickr.com/photos/{i}/",
        "original_url": f"https://farm.example/{i}.jpg",
    }


def class_infos(classes: int) -> list[ClassInfo]:
    return [ClassInfo(c, f"Thing {c}", f"Thing_{c}", f"/m/0t{c}") for c in range(classes)]


def make_multilabel_dataset(
    root: Path,
    classes: int = 3,
    splits: dict[str, int] | None = None,
    seed: int = 0,
    negative_rate: float = 0.7,
    hidden_rate: float = 0.0,
    image_size: tuple[int, int] = (64, 64),
    by_mid: bool = False,
) -> Path:
    """Write the dataset; ``root/photos.json`` records every photo's truth for the tests.
    ``by_mid``: the ``.json`` lists name classes by MID instead of index."""
    infos = class_infos(classes)
    photos = plan_photos(classes, splits or SPLITS, seed, negative_rate, hidden_rate)
    rng = random.Random(seed + 1)
    rows = []
    for split in dict.fromkeys(p.split for p in photos):
        shard = f"wds/{split}-000000.tar"
        (root / "wds").mkdir(parents=True, exist_ok=True)
        with tarfile.open(root / shard, "w", format=tarfile.USTAR_FORMAT) as tar:
            for p in (p for p in photos if p.split == split):
                buf = io.BytesIO()
                draw_scene(p.drawn, rng, image_size).save(buf, "JPEG", quality=90)
                _add(tar, f"{p.image_id}.jpg", buf.getvalue())
                _add(tar, f"{p.image_id}.json", json.dumps(_meta(p, infos, by_mid)).encode())
                rows.append(_row(p, infos, shard))
    write_classes(root, infos, "multilabel", {"expand_up": False})
    write_manifest(root, rows, "multilabel")
    truth = [{"image_id": p.image_id, "split": p.split, "drawn": list(p.drawn)} for p in photos]
    (root / "photos.json").write_text(json.dumps(truth))
    return root


def _meta(p: Photo, infos: list[ClassInfo], by_mid: bool) -> dict[str, object]:
    def named(classes: tuple[int, ...]) -> list[object]:
        return [infos[c].mid if by_mid else c for c in classes]

    return {
        "key": p.image_id,
        "image_id": p.image_id,
        "labels": named(p.positives),
        "negatives": named(p.negatives),
        "label_mids": [infos[c].mid for c in p.positives],
        "negative_mids": [infos[c].mid for c in p.negatives],
        **p.attribution,
    }


def _row(p: Photo, infos: list[ClassInfo], shard: str) -> dict[str, object]:
    return {
        "sample_path": "",
        "key": p.image_id,
        "split": p.split,
        "labels": [infos[c].mid for c in p.positives],
        "negatives": [infos[c].mid for c in p.negatives],
        "machine": [],
        "image_id": p.image_id,
        "wds_shard": shard,
        "parquet_file": "",
        **p.attribution,
    }


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
