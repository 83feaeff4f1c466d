"""The sharded download with the local engine: same store as the plain download, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.helpers.distributed import store_digest

from oiforge.distributed import ShardEvent, run_download_sharded
from oiforge.download import DownloadConfig, download
from oiforge.endpoints import Endpoints
from oiforge.errors import InvalidInputError

CONFIG = DownloadConfig(workers=0, backoff_s=0.05)


@pytest.mark.slow
def test_local_shards_match_the_plain_download(
    sample_selection: Path, endpoints: Endpoints, tmp_path: Path, mirror: object
) -> None:
    plain = download(sample_selection, tmp_path / "plain", CONFIG, endpoints)
    mirror.reset()  # type: ignore[attr-defined]  # burst faults fire again, as for a new run
    events: list[ShardEvent] = []
    sharded = run_download_sharded(
        sample_selection, tmp_path / "sharded", CONFIG, endpoints, num_shards=3,
        on_event=events.append,
    )  # fmt: skip
    assert store_digest(tmp_path / "plain") == store_digest(tmp_path / "sharded")
    assert sharded.statuses == plain.statuses and sharded.journal == plain.journal
    assert sharded.selected == plain.selected and sharded.stopped is None
    assert sorted(e.shard for e in events if e.kind == "started") == [
        "0-of-3", "1-of-3", "2-of-3",
    ]  # fmt: skip
    stats = json.loads((tmp_path / "sharded" / "stats.json").read_text())
    assert stats["backend"] == "local" and stats["num_shards"] == 3
    assert stats["successes"] == plain.ok

    again: list[ShardEvent] = []
    rerun = run_download_sharded(
        sample_selection, tmp_path / "sharded", CONFIG, endpoints, num_shards=3,
        on_event=again.append,
    )  # fmt: skip
    transient = plain.statuses.get("error", 0) + plain.statuses.get("timeout", 0)
    assert len([e for e in again if e.kind == "started"]) <= transient
    assert rerun.skipped >= plain.selected - transient
    assert store_digest(tmp_path / "plain") == store_digest(tmp_path / "sharded")


def test_a_local_store_is_not_fetched_again(
    sample_selection: Path, endpoints: Endpoints, tmp_path: Path
) -> None:
    table = pq.read_table(sample_selection).slice(0, 40)
    store = tmp_path / "store"
    first = download(table, store, CONFIG, endpoints)
    later = run_download_sharded(table, store, CONFIG, endpoints, num_shards=2)
    assert later.skipped >= first.ok and later.statuses.get("ok", 0) == 0
    assert later.journal == first.journal


def test_progress_is_one_stream(
    sample_selection: Path, endpoints: Endpoints, tmp_path: Path
) -> None:
    table = pq.read_table(sample_selection).slice(0, 60)
    seen = []
    run_download_sharded(
        table, tmp_path / "s", CONFIG, endpoints, progress=seen.append, num_shards=2
    )
    assert seen and seen[-1].done == seen[-1].total > 0
    assert all(u.done <= u.total for u in seen)


def test_bad_backend_options(sample_selection: Path, tmp_path: Path) -> None:
    unreachable = Endpoints.for_mirror("http://127.0.0.1:9")
    bad: list[dict[str, object]] = [
        {"backend": "spark"}, {"address": "auto"}, {"num_shards": 0}, {"num_shards": -1},
    ]  # fmt: skip
    for kwargs in bad:
        with pytest.raises(InvalidInputError, match=r"backend|ray-address|num_shards"):
            run_download_sharded(
                sample_selection,
                tmp_path / "s",
                CONFIG,
                unreachable,
                **kwargs,  # type: ignore[arg-type]
            )
    assert not (tmp_path / "s").exists()


def test_hostile_ids_and_empty_selections_match_the_plain_download(tmp_path: Path) -> None:
    import pyarrow as pa

    from oiforge.download import read_journal

    unreachable = Endpoints.for_mirror("http://127.0.0.1:9")
    cfg = DownloadConfig(workers=0, retries=0, connect_timeout_s=1.0)
    empty = pa.table({"image_id": pa.array([], pa.string())})
    nothing = run_download_sharded(empty, tmp_path / "e", cfg, unreachable, num_shards=4)
    assert nothing.selected == nothing.attempted == 0 and nothing.stopped is None
    ids = ["../../etc/passwd", None, "ABCDEF0123456789", "x" * 300, "0123456789abcdef", ""]
    table = pa.table({"image_id": ids})
    plain = download(table, tmp_path / "a", cfg, unreachable)
    sharded = run_download_sharded(table, tmp_path / "b", cfg, unreachable, num_shards=3)
    assert (sharded.statuses, sharded.invalid_ids) == (plain.statuses, plain.invalid_ids)
    columns = ["image_id", "status", "error"]
    assert (
        read_journal(tmp_path / "a").select(columns).to_pylist()
        == read_journal(tmp_path / "b").select(columns).to_pylist()
    )
    assert not (tmp_path / "etc").exists() and not list(tmp_path.glob("b/??/*"))


def test_a_failing_shard_is_a_value_and_the_rerun_finishes_it(
    sample_selection: Path, endpoints: Endpoints, tmp_path: Path
) -> None:
    table = pq.read_table(sample_selection).slice(0, 80)
    store = tmp_path / "store"
    blocker = store / ".shards" / "1-of-2" / "store"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the shard's store folder should be")
    first = run_download_sharded(table, store, CONFIG, endpoints, num_shards=2)
    assert first.stopped is not None and "1-of-2" in first.stopped
    assert 0 < first.journal.get("ok", 0) < len(set(table.column("image_id").to_pylist()))
    stats = json.loads((store / "stats.json").read_text())
    assert [s["error"] is not None for s in stats["shards_run"]] == [False, True]
    blocker.unlink()
    second = run_download_sharded(table, store, CONFIG, endpoints, num_shards=2)
    plain = download(table, tmp_path / "plain", CONFIG, endpoints)
    assert second.stopped is None and second.journal == plain.journal


def test_a_shard_rerun_after_a_crash_fetches_nothing_already_home(
    sample_selection: Path, endpoints: Endpoints, tmp_path: Path
) -> None:
    """Shards write images straight into the main store; a shard whose process died after
    writing (no marker) and a driver that died before merging (no main journal) lose nothing
    and fetch nothing twice on the rerun."""
    from oiforge.download import read_journal

    table = pq.read_table(sample_selection).slice(0, 60)
    store = tmp_path / "store"
    first = run_download_sharded(table, store, CONFIG, endpoints, num_shards=2)
    assert first.ok > 0 and not list(store.glob(".shards/*/store/??/*.jpg"))
    before = store_digest(store)
    for marker in store.glob(".shards/*/done.json"):
        marker.unlink()
    (store / "journal.sqlite").unlink()
    again = run_download_sharded(table, store, CONFIG, endpoints, num_shards=2)
    assert again.statuses.get("ok", 0) == 0 and again.skipped >= first.ok
    assert store_digest(store) == before
    ids = read_journal(store).column("image_id").to_pylist()
    assert len(ids) == len(set(ids))
