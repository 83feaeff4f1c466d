"""Benchmark: what `oiforge run` pays to decide that a large store is unchanged.

The runner digests the store by its journal rows (image, status, sha256), so a download that
fetched nothing new stops the cascade; the digest is cached by the journal file's (size, mtime,
inode). This measures, on a synthetic journal of N images (default 1,000,000):

  1. cold: the first digest (``State.digest(store)`` with an empty cache);
  2. warm: the digest again from a reloaded state file (the cache hit every later run pays);
  3. peer 1, the floor of any row digest: reading the rows through the journal's contract
     reader alone (``read_journal``);
  4. peer 2, what a file-level tool (DVC, ``sha256sum``) pays: sha256 of the journal's bytes.

Prints medians, the ratios cold / peer 1, cold / peer 2 and warm / cold, and writes
bench/results/bench_run.json.

    .venv/bin/python bench/bench_run.py --images 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from oiforge.contracts import Journal, JournalRow, read_journal  # noqa: E402
from oiforge.pipeline.state import State  # noqa: E402
from record import Row, write_results  # noqa: E402

BATCH = 50_000


def make_store(store: Path, images: int) -> None:
    """A journal of ``images`` rows: 82% ok with a sha256, the rest failures (as real runs)."""
    with Journal(store) as journal:
        for start in range(0, images, BATCH):
            rows = []
            for i in range(start, min(start + BATCH, images)):
                ok = i % 50 < 41
                sha = hashlib.sha256(i.to_bytes(8, "little")).hexdigest() if ok else None
                rows.append(
                    JournalRow(f"{i:016x}", "ok" if ok else "http_404", "resized",
                               f"http://h/{i:016x}.jpg", 150_000 if ok else None, sha,
                               640, 480, 1)
                )  # fmt: skip
            journal.append(rows)


def median_s(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        clock = time.perf_counter()
        fn()
        times.append(time.perf_counter() - clock)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        work = Path(tmp)
        store = work / "store"
        clock = time.perf_counter()
        make_store(store, args.images)
        print(f"journal of {args.images:,} images in {time.perf_counter() - clock:.1f} s")

        def cold() -> None:
            (work / "oiforge-run.json").unlink(missing_ok=True)
            State(work).digest(store)

        cold_s = median_s(cold, args.repeat)
        primed = State(work)
        primed.digest(store)
        primed.save()
        warm_s = median_s(lambda: State(work).digest(store), args.repeat)
        rows_s = median_s(lambda: read_journal(store), args.repeat)
        journal = store / "journal.sqlite"

        def file_sha() -> None:
            with journal.open("rb") as fh:
                hashlib.file_digest(fh, "sha256")

        bytes_s = median_s(file_sha, args.repeat)
    report(args, cold_s, warm_s, rows_s, bytes_s)


def report(args: argparse.Namespace, cold: float, warm: float, rows: float, raw: float) -> None:
    n = f"{args.images:,} images"
    print(f"cold digest      {cold:8.3f} s   ({n})")
    print(f"read_journal     {rows:8.3f} s   cold / read_journal {cold / rows:.2f}x")
    print(f"sha256 of bytes  {raw:8.3f} s   cold / file sha256 {cold / raw:.2f}x")
    print(f"warm (cached)    {warm * 1000:8.1f} ms  warm / cold {warm / cold:.4f}")
    write_results(
        "bench_run",
        [
            Row(
                "store digest, cold",
                round(cold, 3),
                "s",
                peer="read_journal (rows only)",
                peer_value=round(rows, 3),
                ratio=round(cold / rows, 2),
                goal="<= 1.5x",
                met=cold / rows <= 1.5,
                extra={"images": args.images},
            ),
            Row(
                "store digest, cold vs file bytes",
                round(cold, 3),
                "s",
                peer="sha256 of journal.sqlite",
                peer_value=round(raw, 3),
                ratio=round(cold / raw, 2),
                extra={"images": args.images},
            ),
            Row(
                "store digest, warm (cache hit)",
                round(warm * 1000, 2),
                "ms",
                peer="cold digest",
                peer_value=round(cold * 1000, 1),
                ratio=round(warm / cold, 4),
                goal="<= 0.01",
                met=warm / cold <= 0.01,
                extra={"images": args.images},
            ),
        ],
    )


if __name__ == "__main__":
    main()
