"""The catalog stage: official files, fetch, DuckDB ingest, classes, hierarchy, selection.

Public API (other stages depend on these names)::

    from oiforge.catalog import open_catalog, select, fetch

    cat = open_catalog("v7")                  # classes + hierarchy work offline
    cat.resolve("Airplane")                 # CatalogClass('/m/0cmf2', 'Fixed-wing aircraft', True)
    sel = select(SelectSpec(classes=("Cat",)), catalog=cat)
    sel.write("selection.parquet")
    select_into(spec, "selection.parquet", catalog=cat)   # the same, a slice at a time
    trainable_classes(cat).to_pandas()       # labels with >= 50 val and >= 20 train images
"""

from oiforge.catalog.catalog import Catalog, open_catalog
from oiforge.catalog.classes import AmbiguousClassError, CatalogClass, ClassMatch, TreeNode
from oiforge.catalog.counts import (
    positive_images,
    positives_by_split,
    sidecar_positives,
    sql_positives,
    sum_splits,
    trainable_classes,
)
from oiforge.catalog.fetch import FetchProgress, FetchResult, fetch
from oiforge.catalog.select import select, select_into
from oiforge.contracts.selection import Selection

__all__ = [
    "AmbiguousClassError",
    "Catalog",
    "CatalogClass",
    "ClassMatch",
    "FetchProgress",
    "FetchResult",
    "Selection",
    "TreeNode",
    "fetch",
    "open_catalog",
    "positive_images",
    "positives_by_split",
    "select",
    "select_into",
    "sidecar_positives",
    "sql_positives",
    "sum_splits",
    "trainable_classes",
]
