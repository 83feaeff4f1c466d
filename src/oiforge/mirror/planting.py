"""Failures planted on purpose in the sample, as fault rules plus the expected outcome.

``expected_status`` is what a downloader that tries the resized bucket first and then the
Flickr original should end with (the journal statuses of ARCHITECTURE.md). For images whose
Flickr original misbehaves the thumbnail (``_z``) misbehaves the same way, except for
``wrong_bytes``, where the thumbnail is 404 (a thumbnail has no MD5 to check against).
"""

from __future__ import annotations

import numpy as np

from oiforge.mirror.faults import FaultRule, make_rule
from oiforge.mirror.plan import PlannedImage

#: fault name -> (count, has resized copy, expected status)
PLANTED: dict[str, tuple[int, bool, str]] = {
    "resized_missing": (20, False, "ok"),
    "flickr_404": (8, True, "ok"),
    "dead_410": (4, False, "http_410"),
    "dead_404": (3, False, "http_404"),
    "placeholder": (6, False, "placeholder"),
    "burst": (1, True, "ok"),
    "truncated": (1, False, "error"),
    "wrong_bytes": (1, False, "bad_md5"),
    "html": (1, False, "not_image"),
}
BURST_COUNT = 2


def flickr_glob(image: PlannedImage) -> str:
    """Matches the Flickr original and thumbnail of one photo, on any host."""
    return f"/flickr/*/{image.photo_id}_*"


def resized_path(image: PlannedImage) -> str:
    return f"/open-images-dataset/{image.split}/{image.image_id}.jpg"


def _rules_for(fault: str, image: PlannedImage) -> list[FaultRule]:
    flickr = flickr_glob(image)
    original = f"{flickr}_o.jpg"
    simple = {"flickr_404": "404", "dead_410": "410", "dead_404": "404",
              "placeholder": "placeholder", "truncated": "truncate", "html": "html"}  # fmt: skip
    if fault in simple:
        return [make_rule(flickr, simple[fault])]
    if fault == "burst":
        return [make_rule(resized_path(image), "burst", BURST_COUNT, 503, retry_after=1)]
    if fault == "wrong_bytes":
        return [make_rule(original, "wrong"), make_rule(flickr, "404")]
    return []


def plant_faults(seed: int, images: list[PlannedImage]) -> list[FaultRule]:
    """Mark images with planted faults (in place) and return the fault rules."""
    rng = np.random.default_rng([seed, 1])
    total = sum(count for count, _, _ in PLANTED.values())
    chosen = rng.choice(len(images), size=total, replace=False)
    rules: list[FaultRule] = []
    at = 0
    for fault, (count, has_resized, status) in PLANTED.items():
        for index in chosen[at : at + count]:
            image = images[int(index)]
            image.fault, image.has_resized, image.expected_status = fault, has_resized, status
            rules += _rules_for(fault, image)
        at += count
    return rules
