"""The build stage: selection + store → a dataset to train on, share and rebuild.

Public API::

    from oiforge.build import BuildInputs, build_dataset, verify_dataset
    result = build_dataset(BuildInputs(selection=..., store=..., out=..., spec=BuildSpec()))
    report = verify_dataset(result.out)
    publish(result.out, "s3://bucket/name@v1"); pull("s3://bucket/name@v1", dest)
"""

from __future__ import annotations

from oiforge.build.excludes import ExcludeList, read_exclude_list
from oiforge.build.lock import LOCK_NAME, VerifyReport, read_lock, verify_dataset
from oiforge.build.runner import BuildInputs, BuildResult, build_dataset

__all__ = [
    "LOCK_NAME",
    "BuildInputs",
    "BuildResult",
    "ExcludeList",
    "VerifyReport",
    "build_dataset",
    "read_exclude_list",
    "read_lock",
    "verify_dataset",
]
