"""``oiforge browse``: a local web app to curate a selection: a grid of its images with their
boxes, a filter sidebar (class with its descendants, split, download status, exclusion, box
flags, label source and confidence, review verdict), a detail view, multi-select with bulk
exclusion, and a review mode for machine labels. It writes the build exclude-list and the label
review file that ``select --review`` and ``build --review`` read."""

from oiforge.browse.app import create_app
from oiforge.browse.excludes import ExcludeStore, ReviewStore
from oiforge.browse.index import ImageIndex

__all__ = ["ExcludeStore", "ImageIndex", "ReviewStore", "create_app"]
