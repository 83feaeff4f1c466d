"""The download on a real local Ray cluster: same store as the local backend; a killed worker
is retried and nothing is lost or duplicated."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.helpers.distributed import store_digest

from oiforge.distributed import ShardEvent, run_download_sharded
from oiforge.download import DownloadConfig, download, read_journal
from oiforge.endpoints import Endpoints

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

CONFIG = DownloadConfig(workers=0, backoff_s=0.05)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        yield
    finally:
        ray.shutdown()


def test_a_one_off_ray_run_starts_ray_with_full_priority_workers_and_stops_it(
    sample_selection: Path, endpoints: Endpoints, tmp_path: Path
) -> None:
    """Without a running cluster the engine starts its own Ray and shuts it down after; its
    workers run at nice 0 like the local path (Ray's own default, 15, starves them)."""
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()  # runs before the module's cluster fixture
    table = pq.read_table(sample_selection).slice(0, 30)
    events: list[ShardEvent] = []
    summary = run_download_sharded(
        table, tmp_path / "s", CONFIG, endpoints, backend="ray", num_shards=2,
        on_event=events.append,
    )  # fmt: skip
    started = [e for e in events if e.kind == "started"]
    assert len(started) == 2 and all(e.nice == 0 and e.pid != os.getpid() for e in started)
    assert summary.stopped is None and not ray.is_initialized()
    assert "RAY_worker_niceness" not in os.environ


def test_ray_download_matches_local(
    ray_cluster: None,
    sample_selection: Path,
    endpoints: Endpoints,
    tmp_path: Path,
    mirror: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    local = download(sample_selection, tmp_path / "local", CONFIG, endpoints)
    mirror.reset()  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="oiforge.distributed.ray_engine"):
        on_ray = run_download_sharded(
            sample_selection, tmp_path / "ray", CONFIG, endpoints, backend="ray", num_shards=3
        )
    # the fixture's cluster keeps Ray's default worker niceness (15): the run says so once
    assert [r.message.count("RAY_worker_niceness=0") for r in caplog.records] == [1]
    assert store_digest(tmp_path / "local") == store_digest(tmp_path / "ray")
    assert on_ray.statuses == local.statuses and on_ray.journal == local.journal
    stats = json.loads((tmp_path / "ray" / "stats.json").read_text())
    assert stats["backend"] == "ray" and len(stats["shards_run"]) == 3


def test_a_killed_worker_is_retried_without_loss_or_duplicates(
    ray_cluster: None, sample_selection: Path, endpoints: Endpoints, tmp_path: Path, mirror: object
) -> None:
    selection = tmp_path / "selection.parquet"
    pq.write_table(pq.read_table(sample_selection).slice(0, 500), selection)
    mirror.reset()  # type: ignore[attr-defined]
    reference = download(selection, tmp_path / "local", CONFIG, endpoints)
    mirror.reset()  # type: ignore[attr-defined]
    slow = DownloadConfig(workers=0, backoff_s=0.05, rate_per_host=60.0)  # ~2-3 s per shard
    killed: list[ShardEvent] = []

    def kill_first_start(event: ShardEvent) -> None:
        if event.kind == "started" and not killed and event.pid != os.getpid():
            killed.append(event)
            os.kill(event.pid, signal.SIGKILL)  # the Ray worker process running this shard

    summary = run_download_sharded(
        selection, tmp_path / "ray", slow, endpoints, backend="ray", num_shards=2,
        on_event=kill_first_start,
    )  # fmt: skip
    assert killed and summary.stopped is None
    stats = json.loads((tmp_path / "ray" / "stats.json").read_text())
    attempts = {s["shard"]: s["attempts"] for s in stats["shards_run"]}
    assert attempts[killed[0].shard] >= 2
    ids = read_journal(tmp_path / "ray").column("image_id").to_pylist()
    assert len(ids) == len(set(ids)) == reference.selected
    assert store_digest(tmp_path / "local") == store_digest(tmp_path / "ray")


def test_ray_build_matches_local(
    ray_cluster: None, sample_selection: Path, endpoints: Endpoints, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    from oiforge.build import BuildInputs, build_dataset
    from oiforge.distributed import run_build_sharded

    selection = tmp_path / "selection.parquet"
    pq.write_table(pq.read_table(sample_selection).slice(0, 120), selection)
    download(selection, tmp_path / "store", CONFIG, endpoints)
    local = build_dataset(BuildInputs(selection, tmp_path / "store", tmp_path / "a", workers=1))
    inputs = BuildInputs(selection, tmp_path / "store", tmp_path / "b")  # default workers
    on_ray = run_build_sharded(inputs, backend="ray", num_shards=2)
    assert on_ray.top_hash == local.top_hash and on_ray.reused_images > 0


def test_a_shard_renders_on_the_cpus_ray_gave_it(ray_cluster: None) -> None:
    """A 1-CPU shard task renders in its own process, not with a pool as wide as the node
    (2 shards x a 2-process pool each was 4 renderers on 2 cores)."""
    import ray

    from oiforge.distributed.build_shards import _assigned_cpus

    assert _assigned_cpus() is None  # the driver keeps the stage's default
    assert ray.get(ray.remote(num_cpus=1)(_assigned_cpus).remote()) == 1
    assert ray.get(ray.remote(num_cpus=2)(_assigned_cpus).remote()) == 2


def test_a_failing_ray_shard_is_a_value(
    ray_cluster: None, sample_selection: Path, endpoints: Endpoints, tmp_path: Path
) -> None:
    table = pq.read_table(sample_selection).slice(0, 40)
    blocker = tmp_path / "store" / ".shards" / "0-of-2" / "store"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    summary = run_download_sharded(
        table, tmp_path / "store", CONFIG, endpoints, backend="ray", num_shards=2
    )
    assert summary.stopped is not None and "0-of-2" in summary.stopped
    assert summary.journal.get("ok", 0) > 0  # the other shard finished and was merged
