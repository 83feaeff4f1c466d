"""The remote hosts oiforge talks to, each with a real default and a setting.

Settings, strongest first: an explicit value (CLI flag / spec), the environment
(``OIFORGE_METADATA_BASE``, ``OIFORGE_IMAGES_BASE``, ``OIFORGE_FLICKR_BASE``), the default.
``Endpoints.for_mirror(url)`` points all three at an ``oiforge mirror`` server, which serves
``/openimages/...``, ``/open-images-dataset/<split>/<id>.jpg`` and ``/flickr/<host>/<path>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from oiforge.contracts import is_image_id

DEFAULT_METADATA_BASE = "https://storage.googleapis.com/openimages"
DEFAULT_IMAGES_BASE = "https://s3.amazonaws.com/open-images-dataset"
MIRROR_ENV = "OIFORGE_MIRROR"


@dataclass(frozen=True)
class Endpoints:
    """Base URLs for the metadata bucket, the resized-image bucket and Flickr.

    ``flickr_base`` of ``None`` means Flickr URLs from the metadata are used as they are;
    otherwise ``https://<host>/<path>`` becomes ``<flickr_base>/<host>/<path>``.
    """

    metadata_base: str = DEFAULT_METADATA_BASE
    images_base: str = DEFAULT_IMAGES_BASE
    flickr_base: str | None = None

    @classmethod
    def for_mirror(cls, base_url: str) -> Endpoints:
        base = base_url.rstrip("/")
        return cls(f"{base}/openimages", f"{base}/open-images-dataset", f"{base}/flickr")

    @classmethod
    def from_env(cls, **overrides: str | None) -> Endpoints:
        """Defaults, then ``$OIFORGE_MIRROR``, then per-host variables, then overrides."""
        mirror = os.environ.get(MIRROR_ENV)
        ep = cls.for_mirror(mirror) if mirror else cls()
        env = {
            "metadata_base": os.environ.get("OIFORGE_METADATA_BASE"),
            "images_base": os.environ.get("OIFORGE_IMAGES_BASE"),
            "flickr_base": os.environ.get("OIFORGE_FLICKR_BASE"),
        }
        for key, value in {**env, **overrides}.items():
            if value:
                ep = replace(ep, **{key: value.rstrip("/")})
        return ep

    def metadata_url(self, relpath: str) -> str:
        """URL of an official metadata file, e.g. ``v7/oidv7-class-descriptions.csv``."""
        return f"{self.metadata_base.rstrip('/')}/{relpath.lstrip('/')}"

    def resized_image_url(self, split: str, image_id: str) -> str:
        """URL of the resized (longest side <= 1024) copy in the public image bucket."""
        if not is_image_id(image_id):
            raise ValueError(f"not an Open Images ImageID (16 hex chars): {image_id!r}")
        return f"{self.images_base.rstrip('/')}/{split}/{image_id}.jpg"

    def flickr_url(self, url: str) -> str:
        """A Flickr URL from the metadata, rewritten to ``flickr_base`` when one is set."""
        if not self.flickr_base or not url:
            return url
        parts = urlsplit(url)
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
        return f"{self.flickr_base.rstrip('/')}/{parts.netloc}{rest}"
