"""The first releases (v1 2016_08, v2 2017_07, v3 2017_11): CSVs shipped inside tarballs.

``fetch_member`` fetches a file's ``.tar.gz`` once (resumable and verified like any official
file, against the tarball's recorded size and MD5), streams through it and places *every*
member this version needs from it at its cache path (temp + rename, with the MD5 sidecar that
ingest reads), then drops the tarball. Only the member names listed in ``files.py`` are ever
written, each to a path oiforge computes: a tar's own paths (``../``, links) are never used.

Their layouts differ from v4+ only in columns, which ingest maps by header: ``images.csv`` has
``Subset`` and no ``Rotation``; v1's ``labels.csv`` and v2/v3's ``annotations-*.csv`` are the
usual ``ImageID,Source,LabelName,Confidence``; ``annotations-human-bbox.csv`` has 8 columns on
train and 13 (with the ``Is*`` flags) on validation/test. Class lists: v1's ``dict.csv``
(``"mid","name"``, no header, lower-case names), v2/v3's ``class-descriptions.csv`` (no header)
and ``classes-bbox.txt`` (one MID a line, the 600 boxable classes).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from oiforge.atomic import fsync_dir, write_text_atomic
from oiforge.catalog.files import LEGACY_FILES, Archive, OfficialFile
from oiforge.errors import MalformedFileError, StageError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
FetchFn = Callable[[OfficialFile], Path]
MemberProgress = Callable[[str, int, int], None]


def archive_file(member: OfficialFile) -> OfficialFile:
    """The tarball of ``member`` as an official file of its own (fetched like any other)."""
    if member.archive is None:
        raise ValueError(f"{member.relpath} is not a member of a tarball")
    arc = member.archive
    return OfficialFile(member.version, "archive", None, arc.relpath, arc.size, arc.md5_hex)


def members_of(archive: Archive) -> list[OfficialFile]:
    """Every official file (any version) that lives in ``archive``."""
    seen: dict[str, OfficialFile] = {}
    for files in LEGACY_FILES.values():
        for f in files:
            if f.archive == archive:
                seen.setdefault(f.relpath, f)
    return list(seen.values())


def fetch_member(
    file: OfficialFile,
    cache_root: Path,
    fetch_archive: FetchFn,
    progress: MemberProgress | None = None,
) -> str:
    """Place ``file`` (and its tarball's other members) under ``cache_root``; its MD5 hex.

    ``fetch_archive`` downloads and verifies the tarball and returns its path. Raises
    ``MalformedFileError`` when the tarball is not a tarball or lacks the member.
    """
    assert file.archive is not None and file.member is not None
    tar_path = fetch_archive(archive_file(file))
    wanted = {f.member: cache_root / f.relpath for f in members_of(file.archive) if f.member}
    wanted = {m: p for m, p in wanted.items() if not p.exists() or m == file.member}
    try:
        digests = extract_members(tar_path, wanted, progress)
    except MalformedFileError:
        _drop(tar_path)  # verified bytes that do not unpack: fetch afresh next time
        raise
    if file.member not in digests:
        raise MalformedFileError(str(tar_path), f"no member {file.member!r} in the tarball")
    if all(p.exists() for p in _member_paths(file.archive, cache_root)):
        _drop(tar_path)  # every member is out; the tarball is up to 1 GB of copies
    return digests[file.member]


def _drop(tar_path: Path) -> None:
    tar_path.unlink(missing_ok=True)
    tar_path.with_name(tar_path.name + ".md5").unlink(missing_ok=True)


def _member_paths(archive: Archive, cache_root: Path) -> list[Path]:
    return [cache_root / f.relpath for f in members_of(archive)]


def member_key(name: str) -> str:
    """A tar member name as the file table spells it (``./a/b`` and ``a//b`` are ``a/b``)."""
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def extract_members(
    tar_path: Path, wanted: dict[str, Path], progress: MemberProgress | None = None
) -> dict[str, str]:
    """Stream ``tar_path`` once; write each wanted regular member to its path atomically.

    Returns member -> MD5 hex of what was written. Members not wanted are skipped unread.
    ``progress(member, bytes_done, member_size)`` is called as bytes are written. A tarball
    that does not read is a ``MalformedFileError``; a cache that cannot be written (disk
    full) a ``StageError``, which leaves the tarball alone.
    """
    done: dict[str, str] = {}
    try:
        with tarfile.open(tar_path, mode="r|*") as tar:
            for info in tar:
                key = member_key(info.name)
                if key not in wanted or not info.isfile():
                    continue
                source = tar.extractfile(info)
                if source is None:
                    continue
                report = (lambda n, k=key, t=info.size: progress(k, n, t)) if progress else None
                done[key] = _write_member(source, wanted[key], report)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise MalformedFileError(str(tar_path), f"not a readable tarball: {exc}") from exc
    return done


def _write_member(source: IO[bytes], dest: Path, report: Callable[[int], None] | None) -> str:
    tmp = dest.with_name(f".{dest.name}.extract")
    digest = hashlib.md5(usedforsecurity=False)
    written = 0
    with _writing(tmp) as out:
        while chunk := source.read(CHUNK_BYTES):  # a read error here is the tarball's
            digest.update(chunk)
            _write(out, chunk, tmp)
            written += len(chunk)
            if report is not None:
                report(written)
    md5 = digest.hexdigest()
    try:
        write_text_atomic(dest.with_name(dest.name + ".md5"), md5 + "\n")
        tmp.replace(dest)
        fsync_dir(dest.parent)
    except OSError as exc:
        raise StageError(f"cannot write {dest}: {exc}") from exc
    log.info("extracted %s (md5 %s)", dest, md5)
    return md5


@contextlib.contextmanager
def _writing(tmp: Path) -> Iterator[IO[bytes]]:
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        out = tmp.open("wb")
    except OSError as exc:
        raise StageError(f"cannot write {tmp}: {exc}") from exc
    with out:
        yield out
        _write(out, b"", tmp)


def _write(out: IO[bytes], chunk: bytes, tmp: Path) -> None:
    try:
        if chunk:
            out.write(chunk)
        else:  # the end: make it durable before the rename
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise StageError(f"cannot write {tmp}: {exc}") from exc
