"""Benchmark: the PostgreSQL catalog. ``load_catalog`` (COPY) time and rows/s, then the same
selection on PostgreSQL (``select_pg``) vs DuckDB (``select``), as a ratio measured in one run.

Data: bench_select's generator (official layouts, v7 train boxes 14.6M x SCALE rows). The server
is a throwaway ``initdb`` cluster on 127.0.0.1 (run as ``nobody`` when root), fsync off.

    .venv/bin/python bench/bench_postgres.py --scale 0.02
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_select import boxable_mids, generate  # noqa: E402
from oiforge.catalog import open_catalog, select  # noqa: E402
from oiforge.postgres import load_catalog, select_pg  # noqa: E402
from oiforge.spec import SelectSpec  # noqa: E402
from record import Row, write_results  # noqa: E402


@contextmanager
def server() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    root.chmod(0o777)
    run = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = str(root / "data")
    subprocess.run(
        [*run, "initdb", "-D", data, "-U", "bench", "--auth=trust"],
        check=True,
        capture_output=True,
        cwd=root,
    )
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
    opts += " -c fsync=off -c max_wal_size=4GB"
    subprocess.run(
        [*run, "pg_ctl", "-D", data, "-o", opts, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
        cwd=root,
    )
    try:
        yield f"postgresql://bench@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run, "pg_ctl", "-D", data, "-m", "fast", "stop"], capture_output=True, cwd=root
        )
        shutil.rmtree(root, ignore_errors=True)


def timed(fn, repeat: int):  # type: ignore[no-untyped-def]
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=0.02)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pgdata-"))
    print(
        f"generated {generate(work, args.scale)}; {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    cat = open_catalog("v7", home=work, fetch_missing=False)
    cat.ingest_cached()
    mids = boxable_mids()
    with server() as dsn:
        t_load, res = timed(lambda: load_catalog(cat, dsn), 1)
        rows = sum(res.rows.values())
        print(f"load_catalog: {rows:,} rows in {t_load:.2f} s = {rows / t_load:,.0f} rows/s")
        t_again, _ = timed(lambda: load_catalog(cat, dsn), 1)
        print(f"reload (idempotent): {t_again:.2f} s")
        results = [
            Row("load_catalog (COPY)", rows / t_load, "rows/s", extra={"rows": rows, "s": t_load}),
            Row("reload (idempotent)", t_again, "s"),
        ]
        for name, q in {"2 classes": mids[100:102], "50 classes": mids[:50]}.items():
            spec = SelectSpec(
                classes=tuple(q), label_mode="box", multi_label="multi", splits=("train",)
            )
            t_duck, d = timed(lambda s=spec: select(s, catalog=cat), args.repeat)
            t_pg, p = timed(lambda s=spec: select_pg(s, dsn), args.repeat)
            same = d.table.equals(p.table)
            print(
                f"select {name}: {d.table.num_rows:,} rows; DuckDB {t_duck:.3f} s, "
                f"PostgreSQL {t_pg:.3f} s, ratio pg/duckdb {t_pg / t_duck:.2f}x, same={same}"
            )
            extra = {"rows": d.table.num_rows, "same_rows": same}
            results.append(Row(f"select {name}: select_pg", t_pg, "s", "DuckDB select", t_duck,
                               t_pg / t_duck, extra=extra))  # fmt: skip
    cat.close()
    shutil.rmtree(work, ignore_errors=True)
    write_results("bench_postgres", results, notes=f"scale {args.scale}, best of {args.repeat}")


if __name__ == "__main__":
    main()
