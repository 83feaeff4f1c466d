"""Benchmark: ``select`` in image-label mode (human-verified and machine labels) vs pandas.

Ours, twice: the command itself (``python -m oiforge.cli select MID... --splits train
--no-fetch``, as a user runs ``oiforge select``: typer, Rich, its table; the headline ratio)
and the API it calls (``select_into``: the selection written to a Parquet file, a slice at a
time; ``api_s``). ``--before OLD/src`` alternates each run with an older source tree, run the
same two ways (``select`` then ``write`` where it has no ``select_into``), under the same load.

Generates full-size-shaped v7 image-level label files in the official formats with DuckDB:
the train human-verified file at its real row count (57,524,352 rows: 19,856,086 positives,
37,668,266 verified negatives, as the V5/V6 "facts and figures" table gives them; the v7
file is of the same order) and the train machine-label file (164,819,642 rows, confidence
0.1-1.0), over the real v7 class list (20,931 MIDs) with a Zipf-like class frequency, about
6.4 human and 18 machine labels an image on 9,011,219 images, sorted by ImageID like the
real files. Validation and test files are small. Each measurement is a fresh process
(interpreter start and imports included; both source trees byte-compiled first, as an
installed copy is: ``bench_select.byte_compile``), ended as ``oiforge select`` ends (the
catalog closed, then ``exiting.exit_now``: no interpreter teardown, where the tree has it);
peak RSS comes from ``wait4``.

Peer: pandas ``read_csv`` of the human file + filter + merge with the image list (the
machine file, 7 GB of CSV, is read in chunks of 5M rows, filtered as it goes: read whole it
does not fit in this machine's memory).

    .venv/bin/python bench/bench_select_labels.py --scale 1.0 --repeat 3 --workdir /tmp/x
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bench_select import _images, _median, byte_compile, median_run, run_child  # noqa: E402
from oiforge.catalog.files import official_files  # noqa: E402
from oiforge.paths import package_data  # noqa: E402
from record import Row, write_results  # noqa: E402

N_IMAGES, N_HUMAN, N_MACHINE = 9_011_219, 57_524_352, 164_819_642
POSITIVE_SHARE = 19_856_086 / N_HUMAN
#: Zipf-like class rank: k = floor(classes * u^POWER) puts most labels on a few classes.
POWER = 4


def v7_mids() -> list[str]:
    text = package_data("openimages", "oidv7-class-descriptions.csv").read_text()
    return [line.split(",", 1)[0] for line in text.splitlines()[1:] if line.strip()]


def generate(home: Path, scale: float) -> dict[str, int]:
    """Write the v7 image list and label files into ``home/metadata`` (official layouts)."""
    mids = v7_mids()
    n_img = int(N_IMAGES * scale)
    con = duckdb.connect()
    con.execute(f"SET threads={os.cpu_count() or 2}; SET preserve_insertion_order=true")
    con.execute("CREATE TABLE mids AS SELECT unnest($1::VARCHAR[]) AS mid", [mids])
    con.execute("CREATE TABLE ml AS SELECT list(mid) AS ml FROM mids")
    sizes = {"images": n_img, "human": int(N_HUMAN * scale), "machine": int(N_MACHINE * scale)}
    for f in official_files("v7", ("images", "human_labels", "machine_labels", "boxes")):
        out = home / "metadata" / f.relpath
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():  # from an earlier, interrupted run (each file is written whole)
            continue
        big = f.split == "train"
        n = n_img if big else 10_000
        if f.kind == "images":
            _images(con, out, n, f.split or "", image_id_sql("i", n))
        elif f.kind == "human_labels":
            _labels(con, out, sizes["human"] if big else 60_000, n, human=True)
        elif f.kind == "machine_labels":
            _labels(con, out, sizes["machine"] if big else 180_000, n, human=False)
        else:
            out.write_text("ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax\n")
    return sizes


def image_id_sql(expr: str, n_img: int) -> str:
    """ImageIDs that sort like their index (the real files are sorted by ImageID)."""
    step = (2**63) // max(n_img, 1)
    return f"printf('%016x', ({expr})::UBIGINT * {step}::UBIGINT)"


def _labels(con: duckdb.DuckDBPyConnection, out: Path, n: int, n_img: int, human: bool) -> None:
    k = f"1 + CAST(floor(len(ml) * pow(random(), {POWER})) AS BIGINT)"
    if human:
        source = "CASE WHEN random() < 0.1 THEN 'crowdsource-verification' ELSE 'verification' END"
        conf = f"CASE WHEN random() < {POSITIVE_SHARE} THEN '1' ELSE '0' END"
    else:
        source = "'machine'"
        conf = "printf('%.1f', (1 + floor(random() * 10)) / 10)"
    image = f"i * {n_img} // {max(n, 1)}"
    con.execute(f"""
    COPY (SELECT {image_id_sql(image, n_img)} AS ImageID, {source} AS Source,
      ml[{k}] AS LabelName, {conf} AS Confidence
    FROM range({n}) t(i), ml) TO '{out}' (HEADER, DELIMITER ',', QUOTE '')
    """)


SELECT_CHILD = """
import sys, time, json
t = time.perf_counter()
from oiforge.catalog import open_catalog, select
from oiforge.spec import SelectSpec
try:
    from oiforge.catalog import select_into
except ImportError:  # a source tree from before select_into (--before): select, then write
    select_into = None
t0 = time.perf_counter()
cat = open_catalog("v7", fetch_missing=False)
t1 = time.perf_counter()
q, out = json.loads(sys.argv[1]), sys.argv[2]
spec = SelectSpec(classes=tuple(q["mids"]), label_mode="image", splits=("train",),
                  multi_label=q["multi_label"], min_confidence=q["min_confidence"])
if select_into is not None:  # what `oiforge select` runs
    rows = select_into(spec, out, catalog=cat).num_rows
else:
    sel = select(spec, catalog=cat)
    sel.write(out)
    rows = sel.table.num_rows
t2 = time.perf_counter()
print(json.dumps({"rows": rows, "import_s": t0 - t, "open_s": t1 - t0, "select_s": t2 - t1}))
try:  # how `oiforge select` ends: catalog closed, then no interpreter teardown
    from oiforge.exiting import exit_now
except ImportError:  # a source tree from before it (--before): a normal exit
    pass
else:
    cat.close()
    exit_now(0)
"""

PANDAS_CHILD = """
import sys, time, json
import pandas as pd
t = time.perf_counter()
human_path, machine_path, images_path = sys.argv[1:4]
q = json.loads(sys.argv[4])
mids = set(q["mids"])
labels = pd.read_csv(human_path)
keep = labels["LabelName"].isin(mids)
if q["multi_label"] != "multi":  # positives only; multi keeps the verified negatives too
    keep &= labels["Confidence"] == 1
parts = [labels[keep]]
del labels
if q["min_confidence"] is not None:
    for chunk in pd.read_csv(machine_path, chunksize=5_000_000):
        parts.append(chunk[chunk["LabelName"].isin(mids)
                           & (chunk["Confidence"] >= q["min_confidence"])])
rows = pd.concat(parts)
images = pd.read_csv(images_path)
rows = rows.merge(images, on="ImageID", how="left")
print(json.dumps({"rows": len(rows), "select_s": time.perf_counter() - t}))
"""


def query_set(mids_by_rank: list[str]) -> dict[str, dict[str, Any]]:
    """Queries by frequency rank (``generate`` gives rank k to the k-th MID of the list).

    Typical: classes from the long tail of the 20,931 (a real 2- or 50-class set such as
    foods or animals is thousands of labels a class, not millions); the worst case names
    the 50 most frequent classes, whose labels are a large share of the file.
    """

    def q(mids: list[str], multi: str = "drop", conf: float | None = None) -> dict[str, Any]:
        return {"mids": mids, "multi_label": multi, "min_confidence": conf}

    typical50 = mids_by_rank[300:3300:60]
    return {
        "2 classes, typical (ranks 500-501)": q(mids_by_rank[500:502]),
        "50 classes, typical (every 60th rank from 300)": q(typical50),
        "50 classes, multi-label with verified negatives, typical": q(typical50, "multi"),
        "50 classes, typical, + machine labels >= 0.5": q(typical50, "drop", 0.5),
        "50 classes, the 50 most frequent (worst case)": q(mids_by_rank[:50]),
    }


def command_args(q: dict[str, Any], out: str) -> list[str]:
    """``oiforge select``'s arguments for a query (what ``SELECT_CHILD`` builds as a spec)."""
    conf = [] if q["min_confidence"] is None else ["--min-confidence", str(q["min_confidence"])]
    return ["select", *q["mids"], "--splits", "train", "--multi-label", q["multi_label"],
            *conf, "--no-fetch", "--out", out]  # fmt: skip


def run_command(args: list[str], home: Path, src: Path = ROOT / "src") -> dict[str, float]:
    """One ``python -m oiforge.cli ...`` process (what the ``oiforge`` script runs): wall time,
    CPU, peak RSS (``wait4``), and the row count from its ``wrote N rows`` line."""
    env = {**os.environ, "OIFORGE_HOME": str(home), "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "oiforge.cli", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else ""
    wrote = re.search(r"^wrote ([\d,]+) rows", out, re.MULTILINE)
    if status != 0 or wrote is None:
        raise SystemExit(f"oiforge select failed ({status}): {out[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    rows = float(wrote.group(1).replace(",", ""))
    return {"rows": rows, "wall_s": wall, "cpu_s": cpu, "peak_mb": usage.ru_maxrss / 1024}


def warm_runs(
    argv: list[str], cmd: list[str], work: Path, args: argparse.Namespace
) -> tuple[dict[str, float], dict[str, float] | None]:
    """Median of ``--repeat`` fresh processes, the command and the API child in turn,
    alternating with ``--before`` when given; the command's figures, with the API child's
    wall time, CPU and peak as ``api_*``."""
    trees = [ROOT / "src"] + ([args.before] if args.before is not None else [])
    runs: dict[Path, list[dict[str, float]]] = {tree: [] for tree in trees}
    for _ in range(args.repeat):
        for tree in trees:
            api = run_child(SELECT_CHILD, argv, work, tree)
            api = {f"api_{k}" if k in ("wall_s", "cpu_s", "peak_mb") else k: v
                   for k, v in api.items()}  # fmt: skip
            command = run_command(cmd, work, tree)
            if command["rows"] != api["rows"]:
                raise SystemExit(f"{tree}: the command wrote {command['rows']:,.0f} rows, "
                                 f"the API {api['rows']:,.0f}")  # fmt: skip
            runs[tree].append({**api, **command})
    now = _median(runs[ROOT / "src"])
    return now, (_median(runs[args.before]) if args.before is not None else None)


def result_rows(
    name: str, warm: dict[str, float], peer: dict[str, float], before: dict[str, float] | None
) -> list[Row]:
    """Whole process against pandas, and the peak memory share (goals of #25)."""
    peer_name = "pandas read_csv + filter + merge"
    worst = "worst case" in name
    whole_x = peer["wall_s"] / warm["wall_s"]
    memory = warm["peak_mb"] / peer["peak_mb"]
    goal, met = (">= 5x", whole_x >= 5) if worst else (">= 20x", whole_x >= 20)
    extra = {"rows": warm["rows"], "peer_rows": peer["rows"], "cpu_s": warm["cpu_s"],
             "peer_cpu_s": peer["cpu_s"], "select_s": warm["select_s"],
             "import_s": warm["import_s"], "api_s": warm["api_wall_s"],
             "api_x": peer["wall_s"] / warm["api_wall_s"],
             "api_peak_mb": warm["api_peak_mb"]}  # fmt: skip
    if before is not None:
        extra |= {"before_s": before["wall_s"], "before_peak_mb": before["peak_mb"],
                  "before_rows": before["rows"], "before_api_s": before["api_wall_s"]}  # fmt: skip
    return [
        Row(f"{name}: warm, whole process (oiforge select)", warm["wall_s"], "s", peer_name,
            peer["wall_s"],
            whole_x, goal + " (#25)", met, extra=extra),
        Row(f"{name}: peak memory", warm["peak_mb"], "MB", peer_name, peer["peak_mb"], memory,
            "<= 0.2 of pandas (#25)", memory <= 0.2),
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--only", default="", help="Run only the queries whose name has this.")
    ap.add_argument("--skip", default="\0", help="Skip the queries whose name has this.")
    ap.add_argument("--before", type=Path, default=None, help="An older src/ to compare with.")
    args = ap.parse_args()
    byte_compile(ROOT / "src", args.before)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-select-labels-"))
    if args.generate_only or not (work / "metadata").exists():
        t = time.perf_counter()
        sizes = generate(work, args.scale)
        print(f"generated {sizes} in {time.perf_counter() - t:.1f} s under {work}", flush=True)
    if args.generate_only:
        return
    meta = work / "metadata"
    files = {f.kind: meta / f.relpath for f in official_files("v7", splits=("train",))}
    paths = [str(files[k]) for k in ("human_labels", "machine_labels", "images")]
    rows: list[Row] = []
    cold_done = (work / "parquet").exists()
    for name, q in query_set(v7_mids()).items():
        if args.only not in name or args.skip in name:
            continue
        arg = json.dumps(q)
        argv = [arg, str(work / "selection.parquet")]
        if not cold_done:  # the first run ingests the CSVs it needs (CSV -> Parquet)
            print(f"cold ({name}): {run_child(SELECT_CHILD, argv, work)}", flush=True)
            cold_done = q["min_confidence"] is not None
        if q["min_confidence"] is not None:
            print(f"cold (machine labels): {run_child(SELECT_CHILD, argv, work)}", flush=True)
        cmd = command_args(q, str(work / "selection.parquet"))
        warm, before = warm_runs(argv, cmd, work, args)
        peer = median_run(PANDAS_CHILD, [*paths, arg], work, 1)
        ratio, memory = peer["wall_s"] / warm["wall_s"], warm["peak_mb"] / peer["peak_mb"]
        api_ratio = peer["wall_s"] / warm["api_wall_s"]
        print(f"\n## {name}\nours {warm}\nbefore {before}\npandas {peer}\nratio {ratio:.1f}x "
              f"(the API child {api_ratio:.1f}x), "
              f"memory {memory:.3f}; load {os.getloadavg()}", flush=True)  # fmt: skip
        rows += result_rows(name, warm, peer, before)
    write_results("bench_select_labels", rows, notes=f"scale {args.scale}, repeat {args.repeat}")


if __name__ == "__main__":
    main()
