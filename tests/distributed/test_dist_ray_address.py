"""`--backend ray` without `--ray-address` starts its own local Ray, even with a cluster
running on the machine (Ray's own default would join the cluster `ray start` last started),
and every run prints which cluster it used."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-c", "from oiforge.cli import main; main()"]


@pytest.fixture()
def running_cluster() -> Iterator[tuple[dict[str, str], str]]:
    """A `ray start --head` cluster published as this machine's current one (in its own Ray
    temp folder, so no other Ray on the machine sees it): the environment and its address."""
    pytest.importorskip("ray")
    folder = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths are long
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {"RAY_TMPDIR": folder, "RAY_AUTH_MODE": "disabled", "COLUMNS": "200"}
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--num-cpus", "1",
         "--port", "0", "--include-dashboard", "false", "--disable-usage-stats", "--block"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    current = Path(folder) / "ray" / "ray_current_cluster"
    try:
        deadline = time.monotonic() + 120
        while not current.is_file() and time.monotonic() < deadline and head.poll() is None:
            time.sleep(0.2)
        assert current.is_file(), "ray start --head did not come up"
        yield env, current.read_text().strip()
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            os.killpg(head.pid, sig)
            time.sleep(2)
        head.wait()
        shutil.rmtree(folder, ignore_errors=True)


def test_ray_backend_starts_a_local_instance_unless_told_and_says_which(
    running_cluster: tuple[dict[str, str], str],
    mirror: object,
    sample_selection: Path,
    tmp_path: Path,
) -> None:
    env, address = running_cluster
    small = tmp_path / "small.parquet"
    pq.write_table(pq.read_table(sample_selection).slice(0, 20), small)
    url = mirror.url  # type: ignore[attr-defined]
    outputs = []
    for name, extra in (("own", []), ("joined", ["--ray-address", "auto"])):
        args = ["download", str(small), "--out", str(tmp_path / name), "--mirror", url,
                "--backend", "ray", "--shards", "2", *extra]  # fmt: skip
        done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        outputs.append(" ".join((done.stdout + done.stderr).split()))
    own, joined = outputs
    assert "backend: started a local Ray instance" in own and address not in own
    assert f"backend: joined the Ray cluster at auto (from --ray-address; GCS {address}" in joined
