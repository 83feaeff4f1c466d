"""``oiforge.lock``: what a dataset was built from and the sha256 of every file in it; verify,
publish and pull check a dataset against it.

The top hash is the sha256 of the sorted ``path<TAB>sha256`` lines of every file but the lock,
so two builds are byte-identical exactly when their top hashes match.

Publish a locked dataset to any fsspec location (S3, GCS, local) and pull it back, verified:
``s3://bucket/name@version`` maps to the prefix ``s3://bucket/name/version/``. Publishing
uploads only files the remote lock does not already list with the same hash and size, and
writes the lock last (so a remote without a lock is never taken as complete). Pulling
reuses local files that already hash right, checks every download against the lock, and
renames a complete, verified copy into place.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

from oiforge import __version__
from oiforge.atomic import replace_dir, write_bytes_atomic, write_text_atomic
from oiforge.errors import (
    ChecksumError,
    DataError,
    FetchError,
    InvalidInputError,
    MalformedFileError,
)

LOCK_NAME: Final = "oiforge.lock"
LOCK_VERSION: Final = 1
_CHUNK: Final = 1 << 20


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def catalog_md5s(folder: Path | None) -> dict[str, str]:
    """Relative path → MD5 of every file of a catalog folder (``build --catalog``: the lock
    records which official metadata files the selection came from)."""
    if folder is None:
        return {}
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        out[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return out


def list_files(root: Path, ignore: Collection[str] = ()) -> list[str]:
    """Every regular file under ``root`` (posix relative paths, sorted) but the lock and the
    top-level entries named in ``ignore`` (``os.walk``: a dataset may hold a million samples).

    Hidden files and folders count like any other: data loaders read them (torchvision's
    ImageFolder loads ``train/Cat/.x.jpg`` and makes a class of ``.ipynb_checkpoints``), so a
    dataset's lock must list them and ``verify`` reports any it does not list."""
    found = []
    for folder, dirs, names in os.walk(root):
        rel = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        if not prefix:
            dirs[:] = [d for d in dirs if d not in ignore]
        for name in names:
            if not prefix and (name == LOCK_NAME or name in ignore):
                continue
            if os.path.isfile(os.path.join(folder, name)):  # noqa: PTH113,PTH118 (hot loop)
                found.append(prefix + name)
    return sorted(found)


def hash_files(
    root: Path, known: Mapping[str, str] | None = None, ignore: Collection[str] = ()
) -> dict[str, str]:
    """Relative path → sha256 for every file of a dataset directory (see ``list_files``).

    ``known`` gives the hashes of files the caller has just written from bytes it hashed
    (exported samples), so they are not read back; every other file is hashed from disk.
    """
    known = known or {}
    return {rel: known.get(rel) or file_sha256(root / rel) for rel in list_files(root, ignore)}


def top_hash(files: Mapping[str, str]) -> str:
    """One hash for the whole file table."""
    text = "".join(f"{path}\t{files[path]}\n" for path in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()


#: Libraries whose versions decide the bytes a build writes: JPEG codecs, resampling, Parquet.
_BYTE_PACKAGES: Final = ("numpy", "pillow", "simplejpeg", "opencv-python-headless", "pyarrow")


def render_environment() -> dict[str, str]:
    """The versions a byte-identical rebuild depends on (``absent`` for what is not installed)."""
    from PIL import features

    env = {}
    for name in _BYTE_PACKAGES:
        try:
            env[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            env[name] = "absent"
    env["pillow-libjpeg"] = str(features.version("jpg") or "absent")
    return env


def environment_changes(locked: Mapping[str, Any]) -> list[str]:
    """``name locked -> now`` for every library version that differs from a lock's."""
    now = render_environment()
    return [
        f"{name} {locked[name]} -> {now.get(name, 'absent')}"
        for name in sorted(locked)
        if now.get(name, "absent") != locked[name]
    ]


def make_lock(files: Mapping[str, str], samples: Mapping[str, str], **info: Any) -> dict[str, Any]:
    """The lock document: ``info`` (spec, inputs, catalog MD5s, ...) plus the hashes."""
    return {
        "lock_version": LOCK_VERSION,
        "tool": "oiforge",
        "tool_version": __version__,
        "environment": render_environment(),
        **info,
        "samples": dict(sorted(samples.items())),
        "files": dict(sorted(files.items())),
        "top_hash": top_hash(files),
    }


def write_lock(root: Path, lock: Mapping[str, Any]) -> None:
    """Write ``oiforge.lock`` (canonical JSON, so the lock itself is reproducible)."""
    write_text_atomic(root / LOCK_NAME, json.dumps(lock, indent=1, sort_keys=True) + "\n")


def read_lock(path: Path) -> dict[str, Any]:
    """Read a lock file (``path`` may be a dataset directory)."""
    if path.is_dir():
        path = path / LOCK_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidInputError(f"no lock file at {path} (is it an oiforge dataset?)") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedFileError(str(path), f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise MalformedFileError(str(path), "not an oiforge lock (no `files` table)")
    if data.get("lock_version") != LOCK_VERSION:
        raise MalformedFileError(str(path), f"unsupported lock_version {data.get('lock_version')}")
    return data


@dataclass
class VerifyReport:
    """The differences between a dataset directory and its lock."""

    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra)

    @property
    def hidden_extra(self) -> list[str]:
        """Extra files with a hidden name or in a hidden folder (``.DS_Store``, ``.x.jpg``):
        extra all the same, since loaders read them."""
        return [p for p in self.extra if any(part.startswith(".") for part in p.split("/"))]


def compare(expected: Mapping[str, str], actual: Mapping[str, str]) -> VerifyReport:
    """Which files are missing, changed or unexpected."""
    return VerifyReport(
        missing=sorted(set(expected) - set(actual)),
        changed=sorted(p for p in expected if p in actual and actual[p] != expected[p]),
        extra=sorted(set(actual) - set(expected)),
        checked=len(actual),
    )


def verify_dataset(root: Path) -> VerifyReport:
    """Hash every file of ``root`` and compare with its ``oiforge.lock``."""
    lock = read_lock(root)
    expected = {str(k): str(v) for k, v in lock["files"].items()}
    if top_hash(expected) != lock.get("top_hash"):
        raise MalformedFileError(str(root / LOCK_NAME), "top_hash does not match its file table")
    return compare(expected, hash_files(root))


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
    replace_dir(staging, dest)
