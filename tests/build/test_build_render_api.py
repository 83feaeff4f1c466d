"""``render_images`` (the per-image half, public for shard jobs) and the cache journal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from oiforge.build import (
    BuildInputs,
    build_cache_dir,
    build_dataset,
    prepare_build_cache,
    render_fingerprint,
    render_images,
)
from oiforge.build.synthetic import SyntheticSet
from oiforge.errors import InvalidInputError
from oiforge.spec import BuildSpec

SPEC = BuildSpec(size=48)


def _halves(s: SyntheticSet, tmp_path: Path) -> list[Path]:
    table = pq.read_table(s.selection)
    ids = sorted(set(table.column("image_id").to_pylist()))
    out = []
    for n, part in enumerate((ids[: len(ids) // 2], ids[len(ids) // 2 :])):
        rows = [r for r in table.to_pylist() if r["image_id"] in set(part)]
        path = tmp_path / f"half{n}.parquet"
        pq.write_table(table.from_pylist(rows, schema=table.schema), path)
        out.append(path)
    return out


@pytest.mark.slow
def test_shard_renders_are_what_the_build_reuses(synth: SyntheticSet, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    cache = build_cache_dir(out)
    prepare_build_cache(cache, SPEC)
    done = [
        render_images(half, synth.store, cache, SPEC, workers=1)
        for half in _halves(synth, tmp_path)
    ]
    assert sum(len(d.records) for d in done) == len(synth.image_ids)
    assert all(d.ok == len(d.records) and d.reused == 0 for d in done)
    again = render_images(synth.selection, synth.store, cache, SPEC, workers=1)
    assert again.reused == len(synth.image_ids)
    result = build_dataset(BuildInputs(synth.selection, synth.store, out, SPEC, workers=1))
    assert result.reused_images == len(synth.image_ids)
    fresh = build_dataset(BuildInputs(synth.selection, synth.store, tmp_path / "b", SPEC))
    assert fresh.top_hash == result.top_hash


def test_a_cache_made_with_other_options_is_refused_not_reset(
    synth: SyntheticSet, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    prepare_build_cache(cache, SPEC)
    (cache / "keep").write_text("other jobs' work")
    other = BuildSpec(size=64)
    assert render_fingerprint(other) != render_fingerprint(SPEC)
    with pytest.raises(InvalidInputError, match="other options"):
        render_images(synth.selection, synth.store, cache, other, workers=1)
    assert (cache / "keep").exists()


def test_torn_or_stale_journal_entries_are_rendered_again(
    synth: SyntheticSet, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    prepare_build_cache(cache, SPEC)
    first = render_images(synth.selection, synth.store, cache, SPEC, workers=1)
    journal = next((cache / "journal").iterdir())
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:-1]) + lines[-1][:40])  # a torn last line
    torn = json.loads(lines[-1])["image_id"]
    victim = next(i for i in sorted(first.records) if i != torn)
    sample = next(s for s in first.records[victim].samples if s.status == "ok")
    (cache / "samples" / sample.key[:2] / f"{sample.key}.jpg").write_bytes(b"not the render")
    again = render_images(synth.selection, synth.store, cache, SPEC, workers=1)
    assert again.reused == len(synth.image_ids) - 2
    assert {i: r.samples for i, r in again.records.items()} == {
        i: r.samples for i, r in first.records.items()
    }


def test_a_build_trusts_sources_its_own_run_rendered_but_checks_samples(
    synth: SyntheticSet, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(synth.store, store)
    out = tmp_path / "ds"
    cache = build_cache_dir(out)
    prepare_build_cache(cache, SPEC)
    first = render_images(synth.selection, store, cache, SPEC, workers=1, run="run-1")
    ids = sorted(first.records)
    source = next(store.rglob(f"{ids[0]}.jpg"))
    source.write_bytes(source.read_bytes() + b"\0")  # the store changed after the render
    sample = next(s for s in first.records[ids[1]].samples if s.status == "ok")
    (cache / "samples" / sample.key[:2] / f"{sample.key}.jpg").write_bytes(b"torn")

    other = tmp_path / "other"  # the same cache under another build (a later run, a resume)
    shutil.copytree(cache, build_cache_dir(other))

    def reused(out: Path, trusted: str | None) -> int:
        inputs = BuildInputs(synth.selection, store, out, SPEC, workers=1, trusted_run=trusted)
        return build_dataset(inputs).reused_images

    # not trusted: the changed source and the torn sample are rendered again
    assert reused(other, None) == len(ids) - 2
    # this run's own records: the source is not hashed again, the sample still is
    assert reused(out, "run-1") == len(ids) - 1
