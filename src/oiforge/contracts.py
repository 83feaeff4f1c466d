"""The files between stages: column names and types every stage agrees on.

See ARCHITECTURE.md ("Data contracts"). A stage writes these with ``pyarrow`` using the
schemas below, and reads them by column name.
"""

from __future__ import annotations

import re
from typing import Final

import pyarrow as pa

#: Official Open Images split names, as in the metadata files and bucket paths.
SPLITS: Final = ("train", "validation", "test")
#: Schema metadata key of ``selection.parquet``: the Open Images version it was selected from.
SELECTION_VERSION_KEY: Final = b"oiforge.open_images_version"
#: Split names in an exported dataset (folder names).
DATASET_SPLITS: Final = ("train", "val", "test")
DATASET_SPLIT_OF: Final = {"train": "train", "validation": "val", "test": "test"}

IMAGE_ID_RE: Final = re.compile(r"^[0-9a-f]{16}$")
BOX_FLAGS: Final = ("is_occluded", "is_truncated", "is_group_of", "is_depiction", "is_inside")


def is_image_id(value: object) -> bool:
    """True for a 16-hex-char ImageID: the only thing that may ever become a path."""
    return isinstance(value, str) and IMAGE_ID_RE.match(value) is not None


#: selection.parquet: one row per (image, label) in image mode, per (image, box) in box mode.
SELECTION_SCHEMA: Final = pa.schema(
    [
        ("image_id", pa.string()),
        ("split", pa.string()),
        ("label_mid", pa.string()),
        ("label_name", pa.string()),
        ("source", pa.string()),
        ("confidence", pa.float32()),
        ("box_index", pa.int32()),  # n-th selected box of this image (null in image mode)
        ("x_min", pa.float32()),
        ("x_max", pa.float32()),
        ("y_min", pa.float32()),
        ("y_max", pa.float32()),
        ("is_occluded", pa.int8()),
        ("is_truncated", pa.int8()),
        ("is_group_of", pa.int8()),
        ("is_depiction", pa.int8()),
        ("is_inside", pa.int8()),
        ("original_url", pa.string()),
        ("landing_url", pa.string()),
        ("thumbnail_url", pa.string()),
        ("license", pa.string()),
        ("author", pa.string()),
        ("author_profile_url", pa.string()),
        ("title", pa.string()),
        ("original_size", pa.int64()),
        ("original_md5", pa.string()),  # base64 of the binary MD5, as in the metadata
        ("rotation", pa.float32()),
        ("spec_hash", pa.string()),
    ]
)

#: Download journal statuses. ``ok`` is the only one with bytes in the store.
DOWNLOAD_STATUSES: Final = (
    "ok",
    "missing",
    "placeholder",
    "bad_md5",
    "not_image",
    "too_large",
    "timeout",
    "error",
)  # plus "http_<code>"


def store_path_parts(image_id: str) -> tuple[str, str]:
    """``store/<id[:2]>/<id>.jpg`` as (folder, file name); refuses anything but an ImageID."""
    if not is_image_id(image_id):
        raise ValueError(f"not an Open Images ImageID (16 hex chars): {image_id!r}")
    return image_id[:2], f"{image_id}.jpg"
