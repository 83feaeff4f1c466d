"""Benchmark: ``compute_stats`` (one pass: machine labels LEFT JOIN human verifications) vs
a limit, one plain read of the columns it needs (image_id, label_mid, confidence of the train
machine and human labels; no join), and vs a peer, pandas doing the same join on the same
Parquet copies.

Generates full-size-shaped v7 image-level label files in the official format with DuckDB
(full size: 170M machine label rows and 58.6M human-verified rows in train, x SCALE; about
a third of the machine labels verified, humans confirming them with probability = machine
confidence; classes Zipf-like over the real 20,931 v7 MIDs), ingests them once (the catalog's
CSV -> Parquet), then runs each measurement in a fresh subprocess, alternating, and prints
medians. Peak RSS from ``wait4``.

    .venv/bin/python bench/bench_stats.py --scale 0.05 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from oiforge.catalog.files import official_files  # noqa: E402
from oiforge.paths import package_data  # noqa: E402
from record import Row, write_results  # noqa: E402

MACHINE_FULL, HUMAN_FULL, IMAGES_FULL = 170_000_000, 58_600_000, 9_011_219
HEADER = "ImageID,Source,LabelName,Confidence"
# machine row j: image j // 19, a Zipf-ish class, confidence 0.1..1.0 (all from hashes)
MACHINE_SQL = """
SELECT lower(lpad(to_hex(hash(j // 19)), 16, '0')) AS ImageID, 'machine' AS Source,
  ml[1 + CAST(floor({n_mids} * pow((hash(j * 3 + 1) % 1000003) / 1000003.0, 3)) AS BIGINT)]
    AS LabelName,
  round(0.1 * (1 + hash(j * 7 + 2) % 10), 1) AS Confidence
FROM range({n}) t(j), (SELECT list(mid ORDER BY k) AS ml FROM mids) l
"""
# human row k < n/3: verifies machine row 3k (confirmed with p = its confidence); the rest
# are positives on other images
HUMAN_SQL = """
SELECT * FROM (
  SELECT ImageID, 'verification' AS Source, LabelName,
    CASE WHEN (hash(j * 13 + 5) % 1000) / 1000.0 < Confidence THEN 1 ELSE 0 END AS Confidence
  FROM ({machine}) m WHERE j % 3 = 0 AND j < 3 * {n_verify}
  UNION ALL
  SELECT lower(lpad(to_hex(hash(k + 77777777)), 16, '0')), 'verification',
    ml[1 + CAST(floor({n_mids} * pow((hash(k * 5 + 3) % 1000003) / 1000003.0, 3)) AS BIGINT)],
    1
  FROM range({n_rest}) t(k), (SELECT list(mid ORDER BY k) AS ml FROM mids) l
) ORDER BY ImageID
"""


def v7_mids() -> list[str]:
    text = package_data("openimages", "oidv7-class-descriptions.csv").read_text()
    return [ln.split(",", 1)[0] for ln in text.splitlines()[1:] if ln.strip()]


def generate(home: Path, scale: float) -> dict[str, int]:
    """Write the v7 image-level label files into ``home/metadata``."""
    mids = v7_mids()
    con = duckdb.connect()
    con.execute(f"SET threads={os.cpu_count() or 2}")
    con.execute("CREATE TABLE m AS SELECT unnest($1::VARCHAR[]) AS mid", [mids])
    con.execute("CREATE TABLE mids AS SELECT row_number() OVER () - 1 AS k, mid FROM m")
    sizes = {"machine": int(MACHINE_FULL * scale), "human": int(HUMAN_FULL * scale)}
    for f in official_files("v7", ("machine_labels", "human_labels")):
        out = home / "metadata" / f.relpath
        out.parent.mkdir(parents=True, exist_ok=True)
        big = f.split == "train"
        n_m = sizes["machine"] if big else 50_000
        n_h = sizes["human"] if big else 20_000
        machine = MACHINE_SQL.format(n_mids=len(mids), n=n_m).replace("SELECT ", "SELECT j, ", 1)
        if f.kind == "machine_labels":
            sql = f"SELECT * EXCLUDE (j) FROM ({machine}) ORDER BY ImageID"
        else:
            n_verify = min(n_h // 2, n_m // 3)
            sql = HUMAN_SQL.format(machine=machine, n_mids=len(mids), n_verify=n_verify,
                                   n_rest=n_h - n_verify)  # fmt: skip
        con.execute(f"COPY ({sql}) TO '{out}' (HEADER, DELIMITER ',')")
    return sizes


OURS = """
import sys, time, json
t = time.perf_counter()
from oiforge.catalog import open_catalog
from oiforge.stats import compute_stats
cat = open_catalog("v7", fetch_missing=False)
t1 = time.perf_counter()
s = compute_stats(cat, "train")
t2 = time.perf_counter()
print(json.dumps({"rows": s.machine_labels, "query_s": t2 - t1, "stats_s": s.seconds}))
"""
SCAN = """
import sys, time, json
t = time.perf_counter()
from oiforge.catalog import open_catalog
cat = open_catalog("v7", fetch_missing=False)
t1 = time.perf_counter()
rows = cat.connection.execute(
    "SELECT count(*), max(image_id), max(label_mid), sum(confidence) FROM machine_labels "
    "WHERE split = 'train' UNION ALL "
    "SELECT count(*), max(image_id), max(label_mid), sum(confidence) FROM human_labels "
    "WHERE split = 'train'").fetchall()
t2 = time.perf_counter()
print(json.dumps({"rows": rows[0][0], "query_s": t2 - t1}))
"""
PANDAS = """
import sys, time, json
import pandas as pd
t = time.perf_counter()
home = sys.argv[1]
m = pd.read_parquet(home + "/parquet/v7/oidv7-train-annotations-machine-imagelabels.csv.parquet",
                    columns=["image_id", "label_mid", "confidence"])
h = pd.read_parquet(home + "/parquet/v7/oidv7-train-annotations-human-imagelabels.csv.parquet",
                    columns=["image_id", "label_mid", "confidence"])
h = h.groupby(["image_id", "label_mid"], as_index=False)["confidence"].agg(["min", "max"])
j = m.merge(h, on=["image_id", "label_mid"], how="left")
j["pct"] = (j["confidence"] * 100).round()
j["confirmed"] = j["min"] == 1
j["rejected"] = j["max"] == 0
cube = j.groupby(["label_mid", "pct"]).agg(machine=("confirmed", "size"),
    confirmed=("confirmed", "sum"), rejected=("rejected", "sum"))
print(json.dumps({"rows": int(cube["machine"].sum()), "query_s": time.perf_counter() - t}))
"""


def run_child(code: str, home: Path, args: list[str] | None = None) -> dict[str, float]:
    env = {**os.environ, "OIFORGE_HOME": str(home), "PYTHONPATH": str(ROOT / "src")}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *(args or [])], env=env, stdout=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"child failed ({status}): {out}")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "wall_s": wall, "peak_mb": usage.ru_maxrss / 1024}


def ingest(home: Path) -> float:
    """The catalog's CSV -> Parquet ingest of the label files (once; not part of a query)."""
    code = (
        "from oiforge.catalog import open_catalog\n"
        "c = open_catalog('v7', fetch_missing=False)\n"
        "c.ensure(['human_labels', 'machine_labels'])\n"
    )
    return run_child(code + "print('{}')", home)["wall_s"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=0.05)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--no-pandas", action="store_true", help="Skip the pandas peer.")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-stats-"))
    if not (work / "parquet").exists():
        t = time.perf_counter()
        sizes = generate(work, args.scale)
        print(f"generated {sizes} in {time.perf_counter() - t:.1f} s under {work}", flush=True)
        print(f"ingest (CSV -> Parquet, once): {ingest(work):.1f} s", flush=True)
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "scan": [], "pandas": []}
    for _ in range(args.repeat):  # alternate, so load changes hit all three alike
        runs["ours"].append(run_child(OURS, work))
        runs["scan"].append(run_child(SCAN, work))
        if not args.no_pandas:
            runs["pandas"].append(run_child(PANDAS, work, [str(work)]))
    print(f"scale {args.scale}; load average {os.getloadavg()} on {os.cpu_count()} cores")
    med = {k: {f: statistics.median(r[f] for r in v) for f in v[0]} for k, v in runs.items() if v}
    for name, m in med.items():
        print(f"{name:7s} rows {m['rows']:,.0f}  query {m['query_s']:.2f} s  "
              f"whole process {m['wall_s']:.2f} s  peak {m['peak_mb']:,.0f} MB")  # fmt: skip
    ours, scan = med["ours"], med["scan"]
    print(f"ratio: stats query / one plain read of the same columns = "
          f"{ours['query_s'] / scan['query_s']:.2f}x")  # fmt: skip
    rows = [Row("compute_stats query (train)", ours["query_s"], "s",
                "limit: one plain read of the same columns", scan["query_s"],
                ours["query_s"] / scan["query_s"], extra=ours)]  # fmt: skip
    if "pandas" in med:
        p = med["pandas"]
        print(f"ratio: pandas / ours = {p['query_s'] / ours['query_s']:.1f}x time, "
              f"{p['peak_mb'] / ours['peak_mb']:.1f}x peak memory")  # fmt: skip
        peer = "pandas on the same Parquet copies"
        rows += [
            Row("compute_stats query (train)", ours["query_s"], "s", peer, p["query_s"],
                p["query_s"] / ours["query_s"], extra={"ratio": "pandas/ours"}),
            Row("compute_stats peak memory", ours["peak_mb"], "MB", peer, p["peak_mb"],
                p["peak_mb"] / ours["peak_mb"], extra={"ratio": "pandas/ours"}),
        ]  # fmt: skip
    write_results("bench_stats", rows, notes=f"scale {args.scale}, {args.repeat} rounds")


if __name__ == "__main__":
    main()
