"""A real PostgreSQL server on 127.0.0.1 in a temp dir (initdb + pg_ctl), run as a non-root user."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for cand in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(cand)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


def _run_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.skip("running as root and no non-root user to run postgres as")


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql")
    user = _run_user()
    root = Path(tempfile.mkdtemp(prefix="oiforge-pg-"))
    root.chmod(0o777)
    data = root / "data"
    port = _free_port()
    if user:
        shutil.chown(root, user)
    subprocess.run(
        _as_user([initdb, "-D", str(data), "-U", "oiforge", "--auth=trust", "-E", "UTF8"], user),
        check=True,
        capture_output=True,
        cwd=root,
    )
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
    opts += " -c fsync=off"
    subprocess.run(
        _as_user(
            [pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"], user
        ),
        check=True,
        capture_output=True,
        cwd=root,
    )
    try:
        yield f"postgresql://oiforge@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], user),
            capture_output=True,
            cwd=root,
        )
        shutil.rmtree(root, ignore_errors=True)
