"""``oiforge.lock``: what a dataset was built from and the sha256 of every file in it.

The top hash is the sha256 of the sorted ``path<TAB>sha256`` lines of every file but the lock,
so two builds are byte-identical exactly when their top hashes match.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from oiforge import __version__
from oiforge.atomic import write_text_atomic
from oiforge.errors import InvalidInputError, MalformedFileError

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


def list_files(root: Path) -> list[str]:
    """Every regular file under ``root`` (posix relative paths, sorted), the lock and hidden
    entries excepted (``os.walk``: a dataset may hold a million samples)."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        for name in names:
            if name.startswith(".") or name == LOCK_NAME:
                continue
            if os.path.isfile(os.path.join(folder, name)):  # noqa: PTH113,PTH118 (hot loop)
                found.append(prefix + name)
    return sorted(found)


def hash_files(root: Path, known: Mapping[str, str] | None = None) -> dict[str, str]:
    """Relative path → sha256 for every file of a dataset directory.

    ``known`` gives the hashes of files the caller has just written from bytes it hashed
    (exported samples), so they are not read back; every other file is hashed from disk.
    """
    known = known or {}
    return {rel: known.get(rel) or file_sha256(root / rel) for rel in list_files(root)}


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
