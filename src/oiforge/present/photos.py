"""Photos on slides: a small JPEG under ``assets/`` and the credit printed beside it.

Every photo carries its ImageID, title and author exactly as written in the manifest, and
its licence (named, linked to the licence URL as written); the same values sit in data
attributes, so a test can compare them with the manifest.
"""

from __future__ import annotations

import io
import logging
import re
from html import escape
from pathlib import Path

from oiforge.atomic import write_bytes_atomic
from oiforge.present.facts import DatasetFacts, SampleRow, photo_bytes

log = logging.getLogger(__name__)

SIDE = 420
_CC = re.compile(r"creativecommons\.org/(licenses|publicdomain)/([a-z-]+)/(\d\.\d)", re.I)
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def licence_name(url: str) -> str:
    """``https://creativecommons.org/licenses/by/2.0/`` -> ``CC BY 2.0``; else the text."""
    match = _CC.search(url or "")
    if not match:
        return url or "licence not given"
    if match[1].lower() == "publicdomain":
        return f"public domain ({match[2].upper()} {match[3]})"
    return f"CC {match[2].upper()} {match[3]}"


def save_photo(dataset: DatasetFacts, sample: SampleRow, assets: Path) -> str | None:
    """Write a thumbnail of the sample into ``assets``; its ``assets/...`` path, or None."""
    from PIL import Image, UnidentifiedImageError

    name = f"photo-{_SAFE.sub('_', sample.key or sample.image_id)}.jpg"
    target = assets / name
    if not target.is_file():
        data = photo_bytes(dataset, sample)
        if data is None:
            log.warning("no file for sample %s of %s", sample.key, dataset.path)
            return None
        try:
            with Image.open(io.BytesIO(data)) as img:
                rgb = img.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            log.warning("cannot decode sample %s: %s", sample.key, exc)
            return None
        rgb.thumbnail((SIDE, SIDE))
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=85)
        write_bytes_atomic(target, buf.getvalue())
    return f"{assets.name}/{name}"


def credit_html(sample: SampleRow) -> str:
    """ImageID, “title” by author, licence: as written in the manifest."""
    title = f"“{escape(sample.title)}”" if sample.title else "untitled"
    author = escape(sample.author) if sample.author else "author not given"
    licence = escape(licence_name(sample.license))
    link = (
        f'<a href="{escape(sample.license)}">{licence}</a>'
        if sample.license.startswith(("http://", "https://"))
        else licence
    )
    return f"ImageID {escape(sample.image_id)}<br>{title} by {author}<br>{link}"


def figure_html(asset: str, sample: SampleRow, heading: str) -> str:
    attrs = " ".join(
        f'data-{k}="{escape(v)}"'
        for k, v in (
            ("image-id", sample.image_id),
            ("author", sample.author),
            ("title", sample.title),
            ("license", sample.license),
        )
    )
    return (
        f'<figure class="photo" {attrs}><img src="{escape(asset)}" alt="{escape(heading)}">'
        f"<figcaption><b>{escape(heading)}</b><br>{credit_html(sample)}</figcaption></figure>"
    )


def photos_html(figures: list[str]) -> str:
    """A row of credited photos (one HTML block: no blank line inside)."""
    return '<div class="photos">' + "".join(figures) + "</div>"
