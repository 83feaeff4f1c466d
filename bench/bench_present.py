"""`oiforge present` on the demo's run: the deck's wall time against its 10 s limit.

    .venv/bin/python bench/bench_present.py [--run DIR] [--repeat 3]

Without ``--run`` it makes the demo's run in bench/out/present/ (reused on later runs): the
mirror sample served on 127.0.0.1, then select (the demo's spec.yaml), download, build (160 px,
folders + WebDataset), train (probe), evaluate and export through the real CLI, as
scripts/demo.sh does. Then, each a whole `oiforge present` process as a user runs it:

  1. present with nothing cached: the learning curve (2 trainings + evaluations) and the
     estimate are measured; their own seconds are reported apart (not part of the limit);
  2. present again, measurements cached: the figure the 10 s limit is about (median);
  3. present --pdf, cached: the same plus Chromium's print;
  4. floor: a process that only reads the artefacts the deck is made of (the readers of
     oiforge.present.facts on run, dataset, selection, journal), median.

Prints each, the ratio to the 10 s limit and to the floor, and writes
bench/results/bench_present.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from record import Row, write_results

OUT = Path(__file__).resolve().parent / "out" / "present"
LIMIT_S = 10.0
SPEC = """\
classes: [Apple, Cat, Dog, Zebra, Strawberry, Penguin]
exclude_images_with: [Person, Human face]
"""
FLOOR = """
import sys
from pathlib import Path
from oiforge.present import facts
run = facts.read_run(Path(sys.argv[1]))
facts.read_evaluation(run.path)
dataset = facts.read_dataset(facts.dataset_of(run, None))
selection = facts.read_selection(facts.find_selection(dataset, None, run.path))
facts.read_download(facts.find_store(selection.path, dataset.path, None), selection.image_ids)
"""


def oiforge(env: dict[str, str], *args: object) -> str:
    cmd = [sys.executable, "-m", "oiforge.cli", *(str(a) for a in args)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def make_demo_run(env: dict[str, str]) -> Path:
    from oiforge.mirror.sample import make_sample
    from oiforge.mirror.server import MirrorServer

    run = OUT / "run"
    if (run / "metrics.json").is_file() and (run / "model.onnx").is_file():
        print(f"reusing the demo's run in {run} (delete {OUT} to rebuild)")
        return run
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    print("making the demo's run (mirror sample, select, download, build, train, evaluate)")
    make_sample(OUT / "sample", seed=0)
    (OUT / "spec.yaml").write_text(SPEC, encoding="utf-8")
    sel, store, dataset = OUT / "selection.parquet", OUT / "store", OUT / "dataset"
    with MirrorServer(OUT / "sample") as mirror:
        env = {**env, "OIFORGE_MIRROR": mirror.url}
        oiforge(env, "catalog", "fetch", "--version", "v7")
        oiforge(env, "select", "--spec", OUT / "spec.yaml", "--out", sel)
        oiforge(env, "download", sel, "--out", store, "--max-side", "512")
        oiforge(env, "build", "--selection", sel, "--store", store, "--out", dataset,
                "--format", "folders", "--format", "webdataset", "--size", "160")  # fmt: skip
    oiforge(env, "train", dataset, "--out", run, "--mode", "probe", "--image-size", "160",
            "--epochs", "30")  # fmt: skip
    oiforge(env, "evaluate", run)
    oiforge(env, "export", run)
    return run


def timed(env: dict[str, str], *args: object) -> tuple[float, str]:
    start = time.perf_counter()
    out = oiforge(env, *args)
    return time.perf_counter() - start, out


def measured(output: str, what: str) -> float:
    found = re.search(rf"measured {what}: ([0-9.]+) s", output)
    return float(found[1]) if found else 0.0


def floor_s(env: dict[str, str], run: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR, str(run)], env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, help="an evaluated, exported run (default: the demo's)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    env = {**os.environ, "OIFORGE_HOME": str(OUT / "home"), "COLUMNS": "200"}
    env.pop("OIFORGE_MIRROR", None)
    run = args.run or make_demo_run(env)
    deck = OUT / "deck"
    present = ("present", run, "--out", deck, "--serve-bench", OUT / "no-serve-bench.json")
    shutil.rmtree(run / "present", ignore_errors=True)
    first, out = timed(env, *present)
    curve, estimate = measured(out, "learning curve"), measured(out, "estimate")
    cached = statistics.median(timed(env, *present)[0] for _ in range(args.repeat))
    with_pdf = statistics.median(timed(env, *present, "--pdf")[0] for _ in range(args.repeat))
    floor = statistics.median(floor_s(env, run) for _ in range(args.repeat))
    load = os.getloadavg()
    print(f"first present (measures): {first:.1f} s = learning curve {curve:.1f} s + estimate "
          f"{estimate:.1f} s + the deck")  # fmt: skip
    print(f"present, measurements cached: {cached:.2f} s (limit {LIMIT_S:.0f} s: "
          f"{cached / LIMIT_S:.2f}x of it); floor (read the artefacts): {floor:.2f} s "
          f"(present = {cached / floor:.1f}x the floor)")  # fmt: skip
    print(f"present --pdf, cached: {with_pdf:.2f} s; load average {load[0]:.2f}")
    rows = [
        Row("present, cached measurements (whole process)", round(cached, 3), "s",
            peer="limit", peer_value=LIMIT_S, ratio=round(cached / LIMIT_S, 3),
            goal="< 10 s", met=cached < LIMIT_S),
        Row("present --pdf, cached", round(with_pdf, 3), "s", peer="limit", peer_value=LIMIT_S,
            ratio=round(with_pdf / LIMIT_S, 3)),
        Row("floor: read the artefacts (whole process)", round(floor, 3), "s",
            peer="present, cached", peer_value=round(cached, 3), ratio=round(cached / floor, 2)),
        Row("learning curve (25%, 50%: train + evaluate)", round(curve, 3), "s"),
        Row("estimate (oiforge estimate's measurement)", round(estimate, 3), "s"),
        Row("first present, nothing cached", round(first, 3), "s"),
    ]  # fmt: skip
    notes = f"run {run}; {args.repeat} repeats (median); load average {load[0]:.2f}"
    path = write_results("bench_present", rows, notes)
    print(json.dumps({"results": str(path)}))


if __name__ == "__main__":
    main()
