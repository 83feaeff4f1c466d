"""Which model does `oiforge train` give on REAL photos, on a 2-core CPU, against a floor?

Three real labelled image sets, fetched at bench time (nothing of them is committed: the bench
writes them under bench/out/bench_models/real/):

- `elpv`: the elpv-dataset wheel from PyPI (CC BY-NC-SA 4.0; `pip download`ed into bench/out/
  when absent): 300x300 greyscale electroluminescence images of solar cells, functional
  (defect probability 0) vs defective (>= 0.67); 500/100/600 train/val/test, stratified by
  class and cell type. Industrial, greyscale: the farthest from ImageNet.
- `fashion`: Fashion-MNIST from Debian's `dataset-fashion-mnist` (MIT), 28x28 greyscale
  product photos, 10 classes; 500/100 train/val from its training set, 1,000 test.
- `digits`: scikit-learn's `load_digits()` (UCI, CC BY 4.0), 8x8 greyscale handwriting,
  10 classes, stratified 70/15/15 with seed 0.

For every dataset: the floor -- scikit-learn's LogisticRegressionCV on the same frozen
features (standardised, C by 5-fold cross-validation over 10^-4..10^4) -- and `--mode auto`
with its default budget, timed from images (the feature cache is emptied first); each of
auto's candidates (probe, mlp, partial-1, partial-2, finetune on the time left) is scored on
the test split from its `candidates/<name>/` run. `--methods` can also train a mode alone.
Writes bench/results/bench_models.json.

    flock -x /tmp/oiforge-cpu.lock .venv/bin/python bench/bench_models.py \
        [--datasets elpv,fashion,digits] [--methods floor,auto,probe,...] [--finetune-minutes 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import Row, write_results

OUT = Path(__file__).resolve().parent / "out" / "bench_models"
METHODS = ("floor", "probe", "mlp", "partial-1", "partial-2", "finetune", "auto")
#: By default: the floor and auto (whose candidates are probe, mlp, partial-1/2, finetune).
DEFAULT_METHODS = ("floor", "auto")


def split_indexes(labels: np.ndarray, seed: int = 0) -> dict[str, list[int]]:
    """Stratified 70/15/15: per class, a seeded permutation cut at 70% and 85%."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        a, b = round(len(idx) * 0.70), round(len(idx) * 0.85)
        out["train"] += idx[:a].tolist()
        out["val"] += idx[a:b].tolist()
        out["test"] += idx[b:].tolist()
    return out


def _save(root: Path, split: str, name: str, key: str, pixels: np.ndarray) -> None:
    folder = root / split / name
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{key}.png")


def stratified_subsets(
    strata: np.ndarray, sizes: dict[str, int], seed: int = 0
) -> dict[str, list[int]]:
    """Disjoint subsets of the given sizes with each stratum's share of the whole (largest
    remainders), every stratum shuffled once with ``seed``."""
    rng = np.random.default_rng(seed)
    values, counts_ = np.unique(strata, return_counts=True)
    perms = {v: rng.permutation(np.flatnonzero(strata == v)).tolist() for v in values}
    taken = dict.fromkeys(values.tolist(), 0)
    out: dict[str, list[int]] = {}
    for split, size in sizes.items():
        exact = counts_ / counts_.sum() * size
        share = np.floor(exact).astype(int)
        for i in np.argsort(-(exact - share))[: size - share.sum()]:
            share[i] += 1
        out[split] = []
        for v, k in zip(values.tolist(), share.tolist(), strict=True):
            out[split] += perms[v][taken[v] : taken[v] + k]
            taken[v] += k
    return out


ELPV_WHEEL = "elpv_dataset-1.0.0.post1-py3-none-any.whl"
#: elpv at the issue's size: ~500 training photos, a validation split, a larger test split.
ELPV_SIZES = {"train": 500, "val": 100, "test": 600}


def elpv_wheel() -> Path:
    """The elpv-dataset wheel (CC BY-NC-SA 4.0: read at bench time, never committed)."""
    found = sorted(OUT.parent.glob("elpv_dataset-*.whl"))
    if not found:
        import subprocess

        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "elpv-dataset==1.0.0.post1",
             "-d", str(OUT.parent)],
            check=True,
        )  # fmt: skip
        found = sorted(OUT.parent.glob("elpv_dataset-*.whl"))
    return found[-1]


def make_elpv(root: Path, sizes: dict[str, int] | None = None) -> str:
    """Solar cells in electroluminescence: functional (defect probability 0) vs defective
    (0.67 or 1). The 295 cells rated 0.33 ("possibly defective") are left out: two experts
    were unsure, and a two-class test should not grade a model on them. Stratified by class
    and cell type (mono/poly), seeded."""
    import zipfile

    with zipfile.ZipFile(elpv_wheel()) as wheel:
        rows = wheel.read("elpv_dataset/data/labels.csv").decode().split("\n")
        rows = [r.split() for r in rows if r.strip()]
        kept = [(path, float(p), kind) for path, p, kind in rows if float(p) == 0 or float(p) > 0.5]
        labels = np.array([0 if p == 0 else 1 for _, p, _ in kept])
        strata = np.array([f"{labels[i]}-{kind}" for i, (_, _, kind) in enumerate(kept)])
        sizes = sizes or ELPV_SIZES
        for split, idx in stratified_subsets(strata, sizes).items():
            for i in idx:
                folder = root / split / ("functional", "defective")[labels[i]]
                folder.mkdir(parents=True, exist_ok=True)
                name = Path(kept[i][0]).name
                (folder / name).write_bytes(wheel.read(f"elpv_dataset/data/{kept[i][0]}"))
    return "elpv-dataset 1.0.0.post1 (PyPI wheel; CC BY-NC-SA 4.0), 300x300 greyscale EL"


FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_NAMES = (
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
    "ankle_boot",
)  # fmt: skip


def _idx_file(path: Path) -> np.ndarray:
    import gzip

    data = gzip.decompress(path.read_bytes())
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def make_fashion(root: Path) -> str:
    """Fashion-MNIST (Zalando product photos, 28x28 greyscale; MIT) from Debian's
    ``dataset-fashion-mnist`` (`apt-get install dataset-fashion-mnist`): 50 training and
    10 validation photos a class from its training set, 100 a class from its test set."""
    if not FASHION.is_dir():
        raise SystemExit("fashion: apt-get install dataset-fashion-mnist")
    train_x = _idx_file(FASHION / "train-images-idx3-ubyte.gz")
    train_y = _idx_file(FASHION / "train-labels-idx1-ubyte.gz")
    test_x = _idx_file(FASHION / "t10k-images-idx3-ubyte.gz")
    test_y = _idx_file(FASHION / "t10k-labels-idx1-ubyte.gz")
    picked = stratified_subsets(train_y, {"train": 500, "val": 100})
    picked_test = stratified_subsets(test_y, {"test": 1000})
    for split, idx in picked.items():
        for i in idx:
            _save(root, split, FASHION_NAMES[train_y[i]], f"tr{i:05d}", train_x[i])
    for i in picked_test["test"]:
        _save(root, "test", FASHION_NAMES[test_y[i]], f"te{i:05d}", test_x[i])
    return "Fashion-MNIST (Debian dataset-fashion-mnist; MIT), 28x28 greyscale"


def make_digits(root: Path) -> str:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.clip(data.images * (255 / 16), 0, 255)
    for split, idx in split_indexes(data.target).items():
        for i in idx:
            _save(root, split, f"digit_{data.target[i]}", f"{i:016x}", images[i])
    return "scikit-learn load_digits (UCI, CC BY 4.0)"


MAKERS = {"elpv": make_elpv, "fashion": make_fashion, "digits": make_digits}


def prepare(name: str) -> tuple[Path, str]:
    root = OUT / "real" / name
    marker = root / "SOURCE"
    if not marker.is_file():
        shutil.rmtree(root, ignore_errors=True)
        source = MAKERS[name](root)
        marker.write_text(source)
    return root, marker.read_text()


def counts(root: Path) -> dict[str, int]:
    return {s: sum(1 for _ in (root / s).rglob("*.png")) for s in ("train", "val", "test")}


def _drain(gen: Any) -> Any:
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def test_predictions(run: Path, ds: Path, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """A run's (or a candidate's) class probabilities on the test split, and the labels."""
    from oiforge.evaluate.run import predict
    from oiforge.train import load_trained
    from oiforge.train.dataset import open_dataset

    samples = open_dataset(ds).splits["test"]
    preds = _drain(predict(load_trained(run), samples, batch_size=64, workers=workers))
    return np.asarray(preds.probs), np.asarray(preds.labels)


def test_accuracy(run: Path, ds: Path, workers: int) -> float:
    probs, labels = test_predictions(run, ds, workers)
    return round(float((probs.argmax(1) == labels).mean()), 4)


def score_auto(out: Path, ds: Path, seconds: float, workers: int) -> dict[str, Any]:
    """Auto's result: the run's own model on the test split (an ensemble as saved), and each
    finished candidate's (the ensemble row: its members' test probabilities averaged)."""
    summary = json.loads((out / "summary.json").read_text())
    candidates = [
        {k: c.get(k) for k in ("name", "val_acc", "val_loss", "seconds", "status", "members")}
        for c in summary.get("candidates", [])
    ]
    probs: dict[str, np.ndarray] = {}
    labels = np.zeros(0)
    for c in candidates:
        if c["status"] != "finished":
            continue
        if c["name"] == "ensemble":
            mean = np.mean([probs[m] for m in c["members"]], axis=0)
            c["test_acc"] = round(float((mean.argmax(1) == labels).mean()), 4)
            continue
        probs[c["name"]], labels = test_predictions(out / "candidates" / c["name"], ds, workers)
        c["test_acc"] = round(float((probs[c["name"]].argmax(1) == labels).mean()), 4)
    return {
        "accuracy": test_accuracy(out, ds, workers), "seconds": round(seconds, 1),
        "chosen": summary.get("chosen"), "overrun_s": summary.get("auto_overrun_seconds"),
        "candidates": [{k: v for k, v in c.items() if v is not None} for c in candidates],
    }  # fmt: skip


def train_method(ds: Path, method: str, args: argparse.Namespace) -> dict[str, Any]:
    """One mode trained alone; ``auto`` also gives each candidate's test accuracy (from its
    ``candidates/<name>/`` run), so one auto run fills the probe..finetune columns."""
    from oiforge.train import build_config, train

    changes: dict[str, Any] = {
        "probe": {"mode": "probe"},
        "mlp": {"mode": "probe", "head": "mlp"},
        "partial-1": {"mode": "partial", "train_blocks": 1},
        "partial-2": {"mode": "partial", "train_blocks": 2},
        "finetune": {"mode": "finetune", "max_minutes": args.finetune_minutes},
        "auto": {"mode": "auto"},
    }[method]
    from oiforge.train.cache import features_dir

    out = OUT / "runs" / ds.name / method
    if method == "auto" and args.rescore and (out / "summary.json").is_file():
        took = json.loads((out / "summary.json").read_text())["auto_seconds"]
        return score_auto(out, ds, float(took), args.workers)
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(features_dir(), ignore_errors=True)  # timed from images, as a user's first run
    config = build_config(dataset=str(ds), out=str(out), workers=args.workers, **changes)
    start = time.perf_counter()
    train(config)
    seconds = time.perf_counter() - start
    if method != "auto":
        return {"accuracy": test_accuracy(out, ds, args.workers), "seconds": round(seconds, 1)}
    return score_auto(out, ds, seconds, args.workers)


def floor(ds: Path, args: argparse.Namespace) -> dict[str, Any]:
    """scikit-learn LogisticRegressionCV on the frozen features oiforge's probe uses."""
    import torch
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from oiforge.train.cache import compute_outputs, feature_extraction
    from oiforge.train.config import DEFAULT_MODEL
    from oiforge.train.dataset import open_dataset
    from oiforge.train.models import create_model, preprocessing_for

    index = open_dataset(ds)
    model = create_model(DEFAULT_MODEL, len(index.classes), pretrained=True).eval()
    prep = preprocessing_for(DEFAULT_MODEL, 224, 0.875)
    extraction = feature_extraction(model, f"{DEFAULT_MODEL}|pretrained=True|head-input")
    feats = {}
    for split in ("train", "test"):
        gen = compute_outputs(
            extraction, index.splits[split], prep, batch_size=64, workers=args.workers,
            device=torch.device("cpu"), phase=split,
        )  # fmt: skip
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                feats[split] = stop.value
                break
    start = time.perf_counter()
    clf = make_pipeline(
        StandardScaler(), LogisticRegressionCV(Cs=np.logspace(-4, 4, 9).tolist(), max_iter=5000)
    )
    clf.fit(feats["train"].x.numpy(), feats["train"].y.numpy())
    acc = float(clf.score(feats["test"].x.numpy(), feats["test"].y.numpy()))
    return {"accuracy": round(acc, 4), "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="elpv,fashion,digits")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help=f"of {METHODS}")
    parser.add_argument("--finetune-minutes", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--rescore", action="store_true",
        help="auto: score the run already in bench/out (its own auto_seconds) instead of training",
    )  # fmt: skip
    args = parser.parse_args()
    if not os.environ.get("OIFORGE_HOME"):  # its own cache: features of these sets only
        os.environ["OIFORGE_HOME"] = str(OUT / "home")
    rows, table = [], {}
    for name in args.datasets.split(","):
        ds, source = prepare(name)
        table[name] = {"source": source, "n": counts(ds), "methods": {}}
        for method in args.methods.split(","):
            result = floor(ds, args) if method == "floor" else train_method(ds, method, args)
            table[name]["methods"][method] = result
            print(f"{name:9s} {method:10s} {json.dumps(result)}", flush=True)
        rows += _rows(name, table[name])
    notes = "; ".join(f"{k}: {v['source']}, n={v['n']}" for k, v in table.items())
    write_results("bench_models", rows, notes=notes)
    print(json.dumps(table, indent=1))


#: The dataset farthest from ImageNet, where #24 asks auto for floor + 0.03.
FARTHEST = "elpv"


def _rows(name: str, entry: dict[str, Any]) -> list[Row]:
    methods: dict[str, dict[str, Any]] = entry["methods"]
    base = methods.get("floor", {}).get("accuracy")
    margin = 0.03 if name == FARTHEST else 0.0
    rows = []
    for method, r in methods.items():
        ratio = r["accuracy"] / base if base and method != "floor" else None
        met = r["accuracy"] >= base + margin if method == "auto" and base is not None else None
        goal = f">= floor + {margin:g}" if method == "auto" else ""
        rows.append(
            Row(f"{name} {method} test accuracy", r["accuracy"], "accuracy",
                peer="sklearn LogisticRegressionCV (floor)", peer_value=base, ratio=ratio,
                goal=goal, met=met,
                extra={"seconds": r["seconds"], "n": entry["n"], "source": entry["source"],
                       **{k: v for k, v in r.items() if k not in ("accuracy", "seconds")}})
        )  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
