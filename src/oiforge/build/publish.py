"""Publish a locked dataset to any fsspec location (S3, GCS, local) and pull it back, verified.

``s3://bucket/name@version`` maps to the prefix ``s3://bucket/name/version/``. Publishing
uploads only files the remote lock does not already list with the same hash and size, and
writes the lock last (so a remote without a lock is never taken as complete). Pulling
reuses local files that already hash right, checks every download against the lock, and
renames a complete, verified copy into place.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from oiforge.atomic import fsync_dir, write_bytes_atomic
from oiforge.build.lock import LOCK_NAME, file_sha256, read_lock, verify_dataset
from oiforge.errors import (
    ChecksumError,
    DataError,
    FetchError,
    InvalidInputError,
    MalformedFileError,
)

ENDPOINT_ENV = "OIFORGE_S3_ENDPOINT_URL"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TransferResult:
    """What a publish or pull moved."""

    url: str
    transferred: int
    skipped: int
    bytes: int


def resolve_url(url: str) -> str:
    """``…/name@version`` → ``…/name/version``; anything else unchanged (no trailing slash)."""
    url = url.rstrip("/")
    head, _, last = url.rpartition("/")
    if "@" in last and head:
        name, _, version = last.partition("@")
        if not name or not version or "/" in version:
            raise InvalidInputError(f"bad dataset address {url!r}: use …/name@version")
        return f"{head}/{name}/{version}"
    return url


def open_fs(url: str, endpoint_url: str | None = None) -> tuple[Any, str]:
    """An fsspec file system and the root path for ``url`` (S3 endpoint from flag or env)."""
    import fsspec

    options: dict[str, Any] = {}
    endpoint = endpoint_url or os.environ.get(ENDPOINT_ENV)
    if url.startswith(("s3://", "s3a://")):
        options["skip_instance_cache"] = True
        if endpoint:
            options["client_kwargs"] = {"endpoint_url": endpoint}
    try:
        fs, root = fsspec.core.url_to_fs(resolve_url(url), **options)
    except (ImportError, ValueError) as exc:
        raise InvalidInputError(f"cannot open {url!r}: {exc}") from exc
    return fs, str(root).rstrip("/")


def safe_relpath(rel: str) -> str:
    """A lock's file path, refused if it could escape the dataset directory."""
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel or rel.startswith("~"):
        raise MalformedFileError(LOCK_NAME, f"unsafe file path {rel!r}")
    return p.as_posix()


def _remote_lock(fs: Any, root: str) -> dict[str, Any]:
    try:
        data = json.loads(fs.cat_file(f"{root}/{LOCK_NAME}"))
    except FileNotFoundError:
        return {}
    except Exception as exc:
        raise FetchError(f"{root}/{LOCK_NAME}", str(exc)) from exc
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else {}


def _remote_sizes(fs: Any, root: str) -> dict[str, int]:
    fs.invalidate_cache()
    try:
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        return {}
    prefix = root + "/"
    return {
        k[len(prefix) :]: int(v.get("size") or 0) for k, v in found.items() if k.startswith(prefix)
    }


def _put(fs: Any, path: Path, remote: str, made: set[str]) -> None:
    parent = remote.rsplit("/", 1)[0]
    if parent not in made:
        fs.makedirs(parent, exist_ok=True)
        made.add(parent)
    fs.put_file(str(path), remote)


def publish(
    local: Path, url: str, endpoint_url: str | None = None, progress: Progress | None = None
) -> TransferResult:
    """Upload a verified dataset directory; only what the remote lacks goes over the wire."""
    report = verify_dataset(local)
    if not report.ok:
        raise DataError(f"{local} does not match its lock; run `oiforge verify {local}`")
    lock = read_lock(local)
    fs, root = open_fs(url, endpoint_url)
    remote_files = _remote_lock(fs, root).get("files", {})
    sizes = _remote_sizes(fs, root)
    sent = skipped = nbytes = 0
    made: set[str] = set()
    files = sorted(lock["files"].items())
    for n, (rel, sha) in enumerate(files, 1):
        path = local / safe_relpath(rel)
        if remote_files.get(rel) == sha and sizes.get(rel) == path.stat().st_size:
            skipped += 1
        else:
            _put(fs, path, f"{root}/{rel}", made)
            sent, nbytes = sent + 1, nbytes + path.stat().st_size
        if progress is not None:
            progress(n, len(files))
    _put(fs, local / LOCK_NAME, f"{root}/{LOCK_NAME}", made)
    return TransferResult(f"{fs.unstrip_protocol(root)}", sent, skipped, nbytes)


def _fetch(fs: Any, remote: str, target: Path, sha: str) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    try:
        fs.get_file(remote, str(tmp))
    except FileNotFoundError as exc:
        raise FetchError(remote, "listed in the lock but missing remotely") from exc
    actual = file_sha256(tmp)
    if actual != sha:
        tmp.unlink()
        raise ChecksumError(f"pulled {remote}", sha, actual)
    tmp.replace(target)
    return target.stat().st_size


def _reuse(dest: Path, rel: str, sha: str, target: Path) -> bool:
    src = dest / rel
    if not src.is_file() or file_sha256(src) != sha:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    return True


def pull(
    url: str, dest: Path, endpoint_url: str | None = None, progress: Progress | None = None
) -> TransferResult:
    """Download a published dataset into ``dest``, verifying every file against the lock."""
    if dest.exists() and (
        not dest.is_dir() or (any(dest.iterdir()) and not (dest / LOCK_NAME).exists())
    ):
        raise InvalidInputError(
            f"{dest} exists and is not an oiforge dataset; pull into a new folder"
        )
    fs, root = open_fs(url, endpoint_url)
    lock_bytes = _lock_bytes(fs, root)
    staging = dest.parent / f".{dest.name}.oiforge-pull"
    shutil.rmtree(staging, ignore_errors=True)
    write_bytes_atomic(staging / LOCK_NAME, lock_bytes)
    try:
        got, skipped, nbytes = _download_all(fs, root, staging, dest, progress)
        _swap(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return TransferResult(f"{fs.unstrip_protocol(root)}", got, skipped, nbytes)


def _download_all(
    fs: Any, root: str, staging: Path, dest: Path, progress: Progress | None
) -> tuple[int, int, int]:
    files = sorted(read_lock(staging)["files"].items())
    got = skipped = nbytes = 0
    for n, (rel, sha) in enumerate(files, 1):
        target = staging / safe_relpath(str(rel))
        if _reuse(dest, rel, str(sha), target):
            skipped += 1
        else:
            nbytes += _fetch(fs, f"{root}/{rel}", target, str(sha))
            got += 1
        if progress is not None:
            progress(n, len(files))
    return got, skipped, nbytes


def _lock_bytes(fs: Any, root: str) -> bytes:
    try:
        return bytes(fs.cat_file(f"{root}/{LOCK_NAME}"))
    except FileNotFoundError as exc:
        raise FetchError(f"{root}/{LOCK_NAME}", "no published dataset there (no lock)") from exc


def _swap(staging: Path, dest: Path) -> None:
    report = verify_dataset(staging)
    if not report.ok:
        raise DataError(f"pulled copy in {staging} does not match its lock")
    os.sync()
    if dest.exists():
        old = dest.parent / f".{dest.name}.oiforge-old"
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
        staging.rename(dest)
        shutil.rmtree(old)
    else:
        staging.rename(dest)
    fsync_dir(dest.parent)
