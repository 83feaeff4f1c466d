"""The files between stages: one module per file, each its only typed reader and writer.

See ARCHITECTURE.md ("Data contracts") and docs/formats.md.

==========================  ==================================  ===========================
module                      file                                written by → read by
==========================  ==================================  ===========================
:mod:`.selection`           ``selection.parquet``               select → download, build
:mod:`.journal`             ``store/`` + ``store/journal.sqlite``  download → build, browse
:mod:`.dataset`             ``manifest.parquet``, ``classes.json``  build → train, evaluate
:mod:`.parquet_images`      ``parquet/<split>.parquet`` (images)  build → train, present
:mod:`.run`                 ``run/labels.json`` (+ config.yaml)  train, export → serve
:mod:`.excludes`            an ``--exclude-list`` file           browse, people → build, book
==========================  ==================================  ===========================

Stages meet here and nowhere else: a stage imports another stage's files through these
modules, never that stage's package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oiforge.contracts.selection import (
    ATTRIBUTION_COLUMNS,
    BOX_FLAGS,
    IMAGE_ID_RE,
    RANDOM_SOURCE,
    ROLES,
    SELECTION_LABELS_KEY,
    SELECTION_SCHEMA,
    SELECTION_VERSION_KEY,
    SPLITS,
    ImageTask,
    SelectedImages,
    Selection,
    WrittenSelection,
    conform_selection,
    count_selected_images,
    is_image_id,
    open_selection,
    read_selected_images,
    read_selection_table,
    selection_labels,
    selection_schema,
    selection_version,
    write_selection,
)
from oiforge.lazy import lazy_attributes

if TYPE_CHECKING:
    from oiforge.contracts.dataset import (
        CLASSES_NAME,
        DATASET_SPLIT_OF,
        DATASET_SPLITS,
        MANIFEST_NAME,
        MANIFEST_SCHEMA,
        MULTI_LABEL_COLUMNS,
        TASKS,
        ClassInfo,
        DatasetClasses,
        Task,
        manifest_schema,
        read_classes,
        read_manifest,
        write_classes,
        write_manifest,
    )
    from oiforge.contracts.excludes import ExcludeList, read_exclude_list
    from oiforge.contracts.journal import (
        DOWNLOAD_STATUSES,
        JOURNAL_NAME,
        JOURNAL_SCHEMA,
        TRANSIENT_STATUSES,
        Journal,
        JournalRow,
        is_transient,
        journal_path,
        read_journal,
        rotated_images,
        status_counts,
        store_image_path,
        store_path_parts,
    )
    from oiforge.contracts.parquet_images import (
        PARQUET_DIR,
        ParquetImage,
        ParquetSplit,
        find_parquet_image,
        list_parquet_files,
        parquet_schema,
        read_parquet_image,
        read_parquet_split,
        write_parquet_split,
    )
    from oiforge.contracts.run import (
        CONFIG_FILE,
        LABELS_FILE,
        Labels,
        ModelInfo,
        Preprocessing,
        parse_labels,
        parse_preprocessing,
        read_labels,
        read_run_config,
        write_labels,
    )

# the selection contract loads with the package (the catalog writes it); the other files'
# modules on first use, so a select never imports the journal's SQLite, the dataset,
# image-Parquet and run contracts
__getattr__ = lazy_attributes(
    __name__,
    {
        "oiforge.contracts.dataset": (
            "CLASSES_NAME",
            "DATASET_SPLIT_OF",
            "DATASET_SPLITS",
            "MANIFEST_NAME",
            "MANIFEST_SCHEMA",
            "MULTI_LABEL_COLUMNS",
            "TASKS",
            "ClassInfo",
            "DatasetClasses",
            "Task",
            "manifest_schema",
            "read_classes",
            "read_manifest",
            "write_classes",
            "write_manifest",
        ),
        "oiforge.contracts.excludes": (
            "ExcludeList",
            "read_exclude_list",
        ),
        "oiforge.contracts.journal": (
            "DOWNLOAD_STATUSES",
            "JOURNAL_NAME",
            "JOURNAL_SCHEMA",
            "TRANSIENT_STATUSES",
            "Journal",
            "JournalRow",
            "is_transient",
            "journal_path",
            "read_journal",
            "rotated_images",
            "status_counts",
            "store_image_path",
            "store_path_parts",
        ),
        "oiforge.contracts.parquet_images": (
            "PARQUET_DIR",
            "ParquetImage",
            "ParquetSplit",
            "find_parquet_image",
            "list_parquet_files",
            "parquet_schema",
            "read_parquet_image",
            "read_parquet_split",
            "write_parquet_split",
        ),
        "oiforge.contracts.run": (
            "CONFIG_FILE",
            "LABELS_FILE",
            "Labels",
            "ModelInfo",
            "Preprocessing",
            "parse_labels",
            "parse_preprocessing",
            "read_labels",
            "read_run_config",
            "write_labels",
        ),
    },
)

__all__ = [
    "ATTRIBUTION_COLUMNS",
    "BOX_FLAGS",
    "CLASSES_NAME",
    "CONFIG_FILE",
    "DATASET_SPLITS",
    "DATASET_SPLIT_OF",
    "DOWNLOAD_STATUSES",
    "IMAGE_ID_RE",
    "JOURNAL_NAME",
    "JOURNAL_SCHEMA",
    "LABELS_FILE",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "MULTI_LABEL_COLUMNS",
    "PARQUET_DIR",
    "RANDOM_SOURCE",
    "ROLES",
    "SELECTION_LABELS_KEY",
    "SELECTION_SCHEMA",
    "SELECTION_VERSION_KEY",
    "SPLITS",
    "TASKS",
    "TRANSIENT_STATUSES",
    "ClassInfo",
    "DatasetClasses",
    "ExcludeList",
    "ImageTask",
    "Journal",
    "JournalRow",
    "Labels",
    "ModelInfo",
    "ParquetImage",
    "ParquetSplit",
    "Preprocessing",
    "SelectedImages",
    "Selection",
    "Task",
    "WrittenSelection",
    "conform_selection",
    "count_selected_images",
    "find_parquet_image",
    "is_image_id",
    "is_transient",
    "journal_path",
    "list_parquet_files",
    "manifest_schema",
    "open_selection",
    "parquet_schema",
    "parse_labels",
    "parse_preprocessing",
    "read_classes",
    "read_exclude_list",
    "read_journal",
    "read_labels",
    "read_manifest",
    "read_parquet_image",
    "read_parquet_split",
    "read_run_config",
    "read_selected_images",
    "read_selection_table",
    "rotated_images",
    "selection_labels",
    "selection_schema",
    "selection_version",
    "status_counts",
    "store_image_path",
    "store_path_parts",
    "write_classes",
    "write_labels",
    "write_manifest",
    "write_parquet_split",
    "write_selection",
]
