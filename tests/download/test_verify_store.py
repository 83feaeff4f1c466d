"""``oiforge download --verify``: a store re-checked against its journal, the selection's
OriginalMD5 and (``--remote``) the server's MD5; bad files are removed and fetched again."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from tests.helpers.download import sample_images, sample_selection
from typer.testing import CliRunner

from oiforge.cli import app
from oiforge.contracts.journal import Journal, JournalRow
from oiforge.download import read_journal
from oiforge.mirror.handlers import corrupt
from oiforge.mirror.server import MirrorServer


def _path(store: Path, image_id: str) -> Path:
    return store / image_id[:2] / f"{image_id}.jpg"


def _damage(store: Path, image_id: str, *, rehash: bool) -> None:
    """Flip bytes of a stored file; ``rehash``: journal the damaged bytes' sha256 too, as a
    version that did not check the ETag did when the body came damaged."""
    path = _path(store, image_id)
    data = corrupt(path.read_bytes(), 0, path.stat().st_size)
    path.write_bytes(data)
    if rehash:
        row = next(r for r in read_journal(store).to_pylist() if r["image_id"] == image_id)
        row = {**row, "attempts": 0, "sha256": hashlib.sha256(data).hexdigest()}
        with Journal(store) as journal:
            journal.append([replace(JournalRow(**row))])


def test_cli_verify_marks_bad_files_and_a_rerun_fetches_only_them(
    sample_root: Path, tmp_path: Path
) -> None:
    images = [i for i in sample_images(sample_root) if i["fault"] == "none"][:8]
    sel, store, runner = tmp_path / "selection.parquet", tmp_path / "store", CliRunner()
    pq.write_table(sample_selection(images), sel)
    poisoned, rotten, gone = (i["image_id"] for i in images[:3])
    with MirrorServer(sample_root, faults=[]) as server:
        get = ["download", str(sel), "--out", str(store), "--mirror", server.url]
        assert runner.invoke(app, get).exit_code == 0
        _damage(store, poisoned, rehash=True)  # journal hash agrees: only the server can tell
        _damage(store, rotten, rehash=False)
        _path(store, gone).unlink()
        local = runner.invoke(app, ["download", str(sel), "--verify", str(store)])
        remote = runner.invoke(app, ["download", "--verify", str(store), "--remote"])
        server.reset()
        assert runner.invoke(app, get).exit_code == 0
        asked = server.request_counts()
        clean = runner.invoke(
            app, ["download", str(sel), "--verify", str(store), "--remote"], terminal_width=200
        )
    assert local.exit_code == 1 and remote.exit_code == 1, local.output
    assert "sha256 1" in local.output and "missing 1" in local.output
    assert "server_md5 1" in remote.output and poisoned in remote.output
    assert clean.exit_code == 0 and "8 stored images verified" in " ".join(clean.output.split())
    assert sorted(asked) == sorted(_resized(i) for i in images[:3])
    rows = {r["image_id"]: r for r in read_journal(store).to_pylist()}
    for img in images:
        served = sample_root / rows[img["image_id"]]["url"].split("/", 3)[3]
        assert _path(store, img["image_id"]).read_bytes() == served.read_bytes()


def _resized(img: dict[str, Any]) -> str:
    return f"/open-images-dataset/{img['split']}/{img['image_id']}.jpg"
