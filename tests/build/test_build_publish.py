"""Publish/pull through fsspec against a real S3 API (moto's server on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from oiforge.build import verify_dataset
from oiforge.build.lock import publish, pull, resolve_url, safe_relpath
from oiforge.build.synthetic import SyntheticSet
from oiforge.cli import app
from oiforge.errors import ChecksumError, InvalidInputError, MalformedFileError

pytestmark = pytest.mark.slow


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_SESSION_TOKEN": "testing",
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="datasets")
    yield endpoint
    server.stop()


def test_publish_pull_roundtrip_uploads_only_missing(
    synth: SyntheticSet, build: Any, s3: str, tmp_path: Path
) -> None:
    out = build(synth, size=48, formats=("folders", "webdataset")).out
    url = "s3://datasets/pets@v1"
    first = publish(out, url, endpoint_url=s3)
    assert first.transferred > 0 and first.skipped == 0
    again = publish(out, url, endpoint_url=s3)
    assert again.transferred == 0 and again.skipped == first.transferred
    pulled = pull(url, tmp_path / "copy", endpoint_url=s3)
    assert pulled.transferred == first.transferred
    assert verify_dataset(tmp_path / "copy").ok
    assert (tmp_path / "copy" / "oiforge.lock").read_bytes() == (out / "oiforge.lock").read_bytes()
    repeat = pull(url, tmp_path / "copy", endpoint_url=s3)
    assert repeat.transferred == 0


def test_pull_rejects_a_tampered_remote(
    synth: SyntheticSet, build: Any, s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    out = build(synth, size=48).out
    monkeypatch.setenv("OIFORGE_S3_ENDPOINT_URL", s3)
    res = CliRunner().invoke(
        app, ["publish", str(out), "s3://datasets/pets@v2"], terminal_width=120
    )
    assert res.exit_code == 0, res.output
    client = boto3.client("s3", endpoint_url=s3)
    key = "pets/v2/classes.json"
    client.put_object(Bucket="datasets", Key=key, Body=b"[]")
    with pytest.raises(ChecksumError):
        pull("s3://datasets/pets@v2", tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    res = CliRunner().invoke(app, ["pull", "s3://datasets/pets@v2", str(tmp_path / "b2")])
    assert res.exit_code == 1


def test_addresses_and_paths() -> None:
    assert resolve_url("s3://b/name@v1") == "s3://b/name/v1"
    assert resolve_url("/tmp/x/") == "/tmp/x"
    with pytest.raises(InvalidInputError):
        resolve_url("s3://b/name@")
    for bad in ("../x", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(MalformedFileError):
            safe_relpath(bad)


def test_publish_to_a_local_path(synth: SyntheticSet, build: Any, tmp_path: Path) -> None:
    out = build(synth, size=48).out
    publish(out, str(tmp_path / "remote" / "pets@v1"))
    assert (tmp_path / "remote" / "pets" / "v1" / "oiforge.lock").is_file()
    pull(str(tmp_path / "remote" / "pets@v1"), tmp_path / "back")
    assert verify_dataset(tmp_path / "back").ok
