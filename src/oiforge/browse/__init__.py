"""``oiforge browse``: a local web app to search classes, walk the hierarchy, review a
selection's images with their boxes and attribution, and curate the build exclude-list."""

from oiforge.browse.app import create_app
from oiforge.browse.excludes import ExcludeStore

__all__ = ["ExcludeStore", "create_app"]
