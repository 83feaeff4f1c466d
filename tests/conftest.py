"""Fixtures every test can use.

- ``clean_environ`` (autouse): no OIFORGE_* variable leaks in from the developer's shell, and
  ``OIFORGE_HOME`` points at a fresh temp dir, so no test touches ``~/.cache/oiforge``.
- ``sample_root`` (session): the mirror sample generated once per run (``make_sample``).
- ``mirror`` (session): an ``oiforge mirror`` server over ``sample_root`` on 127.0.0.1, with the
  sample's own fault rules; ``mirror.url`` is its base URL.
- ``endpoints`` : ``Endpoints.for_mirror(mirror.url)``.
- ``artifacts``: ``test-artifacts/`` (git-ignored) for screenshots a person can look at.
- ``chromium``: a real headless Debian Chromium driven by playwright (never a downloaded one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_environ(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("OIFORGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OIFORGE_HOME", str(tmp_path_factory.mktemp("oiforge-home")))


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample (seed 0), copied from a cache keyed by ``fingerprint()`` when one exists
    (byte-identical by construction; tests/mirror also generates one fresh and compares)."""
    import shutil
    import tempfile
    import time

    from oiforge.mirror.sample import fingerprint, make_sample

    root = tmp_path_factory.mktemp("mirror-sample")
    cache = Path(tempfile.gettempdir()) / "oiforge-test-cache" / f"sample-{fingerprint(0)}"
    if (cache / "sample.json").is_file():
        shutil.copytree(cache, root, dirs_exist_ok=True)
        return root
    make_sample(root, seed=0)
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sample-", dir=cache.parent))
    shutil.copytree(root, staging, dirs_exist_ok=True)
    try:
        staging.rename(cache)
    except OSError:  # another session published it first
        shutil.rmtree(staging, ignore_errors=True)
    for old in cache.parent.glob("sample-*"):  # older code versions, unused for an hour
        if old != cache and time.time() - old.stat().st_mtime > 3600:
            shutil.rmtree(old, ignore_errors=True)
    return root


@pytest.fixture(scope="session")
def mirror(sample_root: Path) -> Iterator[object]:
    from oiforge.mirror.server import MirrorServer

    with MirrorServer(sample_root) as server:
        yield server


@pytest.fixture()
def endpoints(mirror: object) -> object:
    from oiforge.endpoints import Endpoints

    return Endpoints.for_mirror(mirror.url)  # type: ignore[attr-defined]


CHROMIUM = "/usr/bin/chromium"
#: without the background-networking flags Chromium keeps dialling Google on a closed network
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)


@pytest.fixture()
def artifacts() -> Path:
    path = Path(__file__).resolve().parents[1] / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture()
def chromium() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: run scripts/install-system-deps.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield browser
        finally:
            browser.close()
