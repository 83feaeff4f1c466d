"""Fault rules: which URL paths misbehave, and how.

A rule matches a request path (no query) with a shell glob (``*`` also matches ``/``); the
first matching rule wins. Kinds and their argument (``GLOB=KIND[:ARG]`` on the command line,
``{glob, kind, arg, ...}`` in YAML):

========== ================================================================================
``404``    404 Not Found (also ``410``, ``403``, ``500``, ``503``: any status 400-599)
burst      the first ``arg`` (default 2) requests of each matching path fail with ``status``
           (default 503, optional ``retry_after`` seconds); later ones are served normally
slow       the body is sent at ``arg`` bytes/s (default 65536)
truncate   full Content-Length, but only ``arg`` bytes (default half) are sent, then the
           connection is closed
wrong      same length, different bytes (every 97th byte flipped): an MD5 mismatch
placeholder 302 to the Flickr "photo unavailable" placeholder image
html       200 ``text/html`` instead of the file
oversize   200 ``image/jpeg`` with an ``arg`` MB (default 64) body of junk after a JPEG header
========== ================================================================================

Failures planted on purpose in the sample are fault rules plus the expected outcome
(:func:`plant_faults`): ``expected_status`` is what a downloader that tries the resized bucket
first and then the Flickr original should end with (the journal statuses of ARCHITECTURE.md).
For images whose Flickr original misbehaves the thumbnail (``_z``) misbehaves the same way,
except for ``wrong_bytes``, where the thumbnail is 404 (a thumbnail has no MD5 to check
against).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from oiforge.errors import InvalidInputError
from oiforge.mirror.plan import PlannedImage

KINDS = ("status", "burst", "slow", "truncate", "wrong", "placeholder", "html", "oversize")
_ALIASES = {"wrong_bytes": "wrong", "wrong-bytes": "wrong", "redirect": "placeholder",
            "truncated": "truncate", "huge": "oversize", "oversized": "oversize"}  # fmt: skip


@dataclass(frozen=True)
class FaultRule:
    """One fault: a path glob, a kind, its numeric argument, and burst options."""

    glob: str
    kind: str
    arg: int | None = None
    status: int = 503
    retry_after: int | None = None

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.glob)

    def to_dict(self) -> dict[str, Any]:
        kind = str(self.status) if self.kind == "status" else self.kind
        out: dict[str, Any] = {"glob": self.glob, "kind": kind}
        if self.arg is not None:
            out["arg"] = self.arg
        if self.kind == "burst":
            out["status"] = self.status
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        return out


def _kind_and_status(kind: str) -> tuple[str, int | None]:
    kind = _ALIASES.get(kind.strip().lower(), kind.strip().lower())
    if re.fullmatch(r"[45]\d\d", kind):
        return "status", int(kind)
    if kind not in KINDS:
        raise InvalidInputError(
            f"unknown fault kind {kind!r}; use a 4xx/5xx status or one of {', '.join(KINDS[1:])}"
        )
    return kind, None


def make_rule(
    glob: str, kind: str, arg: int | None = None, status: int | None = None,
    retry_after: int | None = None,
) -> FaultRule:  # fmt: skip
    """A validated rule; ``kind`` may be a status code such as ``"404"``."""
    if not glob or not glob.startswith(("/", "*")):
        raise InvalidInputError(f"fault glob must match a URL path (start with / or *): {glob!r}")
    name, code = _kind_and_status(kind)
    if arg is not None and arg < 0:
        raise InvalidInputError(f"fault argument must be >= 0: {glob}={kind}:{arg}")
    chosen = code or status or 503
    if not 400 <= chosen <= 599:
        raise InvalidInputError(f"fault status must be 400-599, got {chosen}")
    return FaultRule(glob, name, arg, chosen, retry_after)


def parse_flag(text: str) -> FaultRule:
    """``GLOB=KIND[:ARG]``, e.g. ``/flickr/*_o.jpg=410`` or ``*/abc.jpg=burst:3``."""
    glob, sep, rest = text.rpartition("=")
    if not sep:
        raise InvalidInputError(f"fault flag must look like GLOB=KIND[:ARG], got {text!r}")
    kind, _, arg_text = rest.partition(":")
    try:
        arg = int(arg_text) if arg_text else None
    except ValueError:
        raise InvalidInputError(f"fault argument must be an integer: {text!r}") from None
    return make_rule(glob, kind, arg)


def _rule_from_mapping(item: Mapping[str, Any], where: str) -> FaultRule:
    try:
        return make_rule(
            str(item["glob"]), str(item["kind"]),
            None if item.get("arg") is None else int(item["arg"]),
            None if item.get("status") is None else int(item["status"]),
            None if item.get("retry_after") is None else int(item["retry_after"]),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{where}: bad fault rule {dict(item)!r} ({exc})") from None


def load_rules(path: Path) -> list[FaultRule]:
    """Rules from a YAML file: ``rules: [{glob, kind, arg?, status?, retry_after?}, ...]``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"cannot read fault file {path}: {exc}") from None
    items = data.get("rules", []) if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidInputError(f"{path}: expected `rules:` with a list of mappings")
    return [_rule_from_mapping(item, str(path)) for item in items]


def dump_rules(rules: Iterable[FaultRule]) -> str:
    """YAML text for ``rules`` (the format :func:`load_rules` reads)."""
    return yaml.safe_dump(
        {"rules": [r.to_dict() for r in rules]}, sort_keys=False, allow_unicode=True
    )


def find_rule(rules: Sequence[FaultRule], path: str) -> FaultRule | None:
    """The first rule whose glob matches ``path``."""
    return next((r for r in rules if r.matches(path)), None)


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
