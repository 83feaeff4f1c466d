"""v1-v3 releases: tarball extraction and `classes --trainable`, each against a peer in one run.

    .venv/bin/python bench/bench_legacy.py --rows 5000000 --repeats 3

Writes a v3-shaped ``annotations_human_2017_11.tar.gz`` (train: ``--rows`` label rows in the
official 4-column layout, validation: 1/20 of that; 20,000 MIDs with a long tail; 60% positive),
packed by GNU tar. Then, alternating, median of ``--repeats``:

1. extraction: ``oiforge.catalog.legacy.extract_members`` (streams the tarball once, writes the
   members atomically with their MD5) vs ``tar -xzf`` (GNU tar + gzip, no MD5);
2. trainable classes from the extracted CSVs: ``trainable_classes`` on a fresh catalog (CSV ->
   Parquet ingest included), and again warm (Parquet already there), vs pandas ``read_csv`` +
   filter + ``groupby().nunique()`` (the peer a notebook user would write). Results must agree.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from oiforge.catalog import open_catalog, trainable_classes
from oiforge.catalog.files import official_files
from oiforge.catalog.legacy import extract_members
from record import Row, write_results

MEMBERS = {s: f"2017_11/{s}/annotations-human.csv" for s in ("train", "validation")}


def write_labels(path: Path, rows: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SELECT setseed({seed / 1000})")
    con.execute(
        "COPY (SELECT lpad(to_hex(hash(i // 5 + ?) >> 1), 16, '0') AS ImageID, "
        "CASE WHEN random() < 0.05 THEN 'crowdsource-verification' ELSE 'verification' END "
        "AS Source, '/m/0' || CAST(floor(pow(random(), 3) * 20000) AS INTEGER) AS LabelName, "
        "CASE WHEN random() < 0.6 THEN 1 ELSE 0 END AS Confidence "
        f"FROM range({rows}) t(i) ORDER BY ImageID) TO '{path}' (HEADER, DELIMITER ',')",
        [seed * 10**9],
    )


def make_tarball(work: Path, rows: int) -> Path:
    src = work / "src"
    write_labels(src / MEMBERS["train"], rows, 1)
    write_labels(src / MEMBERS["validation"], max(rows // 20, 1), 2)
    tar = work / "annotations_human_2017_11.tar.gz"
    subprocess.run(["tar", "-czf", str(tar), "-C", str(src), "2017_11"], check=True)
    shutil.rmtree(src)
    return tar


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def ours_extract(tar: Path, dest: Path) -> object:
    return extract_members(tar, {m: dest / m for m in MEMBERS.values()})


def gnu_extract(tar: Path, dest: Path) -> object:
    dest.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["tar", "-xzf", str(tar), "-C", str(dest)], check=True)


def ours_trainable(home: Path) -> dict[str, tuple[int, int]]:
    with open_catalog("v3", home=home, fetch_missing=False) as cat:
        table = trainable_classes(cat, include_all=True)
    rows = table.to_pylist()
    return {r["label_mid"]: (r["train_images"], r["val_images"]) for r in rows}


def pandas_trainable(home: Path) -> dict[str, tuple[int, int]]:
    import pandas as pd

    counts = {}
    for split in ("train", "validation"):
        frame = pd.read_csv(
            home / "metadata" / MEMBERS[split], usecols=["ImageID", "LabelName", "Confidence"]
        )
        positive = frame[frame["Confidence"] == 1]
        counts[split] = positive.groupby("LabelName")["ImageID"].nunique()
    both = pd.concat(counts, axis=1).fillna(0).astype("int64")
    return {str(m): (int(r["train"]), int(r["validation"])) for m, r in both.iterrows()}


def fresh_home(work: Path, extracted: Path, n: int) -> Path:
    home = work / f"home{n}"
    for f in official_files("v3", ("human_labels",), ("train", "validation")):
        dest = home / "metadata" / f.relpath
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.link(extracted / f.relpath, dest)
    return home


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the offline class-list fallback is expected here
    work = Path(tempfile.mkdtemp(prefix="bench-legacy-"))
    try:
        med = run(work, args.rows, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    pandas = "pandas read_csv + filter + groupby().nunique()"
    write_results("bench_legacy", [
        Row("extract both members (atomic, MD5)", med["ours_x"], "s", "tar -xzf", med["tar_x"],
            med["ours_x"] / med["tar_x"], extra={"ratio": "ours/tar"}),
        Row("trainable classes, warm", med["warm"], "s", pandas, med["pd"],
            med["pd"] / med["warm"], extra={"ratio": "pandas/ours"}),
        Row("trainable classes, cold (ingest included)", med["cold"], "s", pandas, med["pd"],
            med["pd"] / med["cold"], extra={"ratio": "pandas/ours"}),
    ], notes=f"--rows {args.rows} --repeats {args.repeats}")  # fmt: skip


def run(work: Path, rows: int, repeats: int) -> dict[str, float]:
    tar = make_tarball(work, rows)
    print(f"tarball {tar.stat().st_size / 1e6:.1f} MB ({rows:,} + {rows // 20:,} rows), "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in ("ours_x", "tar_x", "cold", "warm", "pd")}
    for n in range(repeats):
        ours_dir, tar_dir = work / f"o{n}", work / f"t{n}"
        times["ours_x"].append(timed(ours_extract, tar, ours_dir)[0])
        times["tar_x"].append(timed(gnu_extract, tar, tar_dir)[0])
        home = fresh_home(work, ours_dir, n)
        cold, ours = timed(ours_trainable, home)
        warm, _ = timed(ours_trainable, home)
        peer_t, peer = timed(pandas_trainable, home)
        assert ours == peer, "trainable counts differ from pandas"
        times["cold"].append(cold)
        times["warm"].append(warm)
        times["pd"].append(peer_t)
        shutil.rmtree(tar_dir)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"extract: ours {med['ours_x']:.2f} s vs tar -xzf {med['tar_x']:.2f} s "
          f"(ratio {med['ours_x'] / med['tar_x']:.2f}, ours also writes MD5s)")  # fmt: skip
    print(f"trainable: cold (ingest included) {med['cold']:.2f} s, warm {med['warm']:.2f} s, "
          f"pandas {med['pd']:.2f} s (pandas/cold {med['pd'] / med['cold']:.2f}x, "
          f"pandas/warm {med['pd'] / med['warm']:.2f}x)")  # fmt: skip
    print(f"runs: {({k: [round(x, 2) for x in v] for k, v in times.items()})}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    return med


if __name__ == "__main__":
    main()
