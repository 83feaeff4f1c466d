"""Benchmark of the train stage (CPU), each figure against a peer measured in the same run.

1. Training throughput: `oiforge.train.run_training` (finetune, everything trainable) vs a
   bare PyTorch loop over torchvision's ImageFolder with the same model, transforms, batch
   size, workers and optimizer. Our overhead should be <= 10%.
2. Time to reach a target validation accuracy: probe (features once + a head) vs finetune.

Data: Pillow-drawn class-dependent photos-like JPEGs (tests/train/synthetic.py), made here.

    .venv/bin/python bench/bench_train.py [--images 96] [--size 128] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from oiforge.train import build_config, run_training
from oiforge.train.events import EpochEnd, PhaseStart, Step
from oiforge.train.images import train_transform
from oiforge.train.models import create_model, preprocessing_for
from train.synthetic import make_dataset


def ours_img_s(ds: Path, out: Path, size: int, epochs: int, batch: int, workers: int) -> float:
    """Train images per second of the last epoch's training steps (validation excluded)."""
    config = build_config(
        dataset=str(ds), out=str(out), mode="finetune", head_epochs=0, epochs=epochs,
        image_size=size, batch_size=batch, workers=workers, augment="light", patience=99,
    )  # fmt: skip
    start, last_step, seen = 0.0, 0.0, 0
    for event in run_training(config):
        if isinstance(event, PhaseStart) and event.phase == "epoch":
            start, seen = time.perf_counter(), 0
        elif isinstance(event, Step) and event.phase == "train":
            last_step, seen = time.perf_counter(), event.step * batch
    return seen / (last_step - start)


def bare_img_s(ds: Path, size: int, epochs: int, batch: int, workers: int) -> float:
    """The same work as a plain loop: ImageFolder + DataLoader + AdamW + cross-entropy."""
    from torchvision.datasets import ImageFolder

    prep = preprocessing_for("efficientnet_lite0", size, 0.875)
    data = ImageFolder(str(ds / "train"), transform=train_transform(prep, "light"))
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True
    )
    model = create_model("efficientnet_lite0", len(data.classes), pretrained=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    rate = 0.0
    for _ in range(epochs):
        model.train()
        start, seen = time.perf_counter(), 0
        for x, y in loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
        rate = seen / (time.perf_counter() - start)
    return rate


def compare_throughput(root: Path, ds: Path, args: argparse.Namespace) -> tuple[float, float]:
    """Best-of-N of each, interleaved, so load from other processes hits both alike."""
    ours, bare = [], []
    for rep in range(args.repeats):
        bare.append(bare_img_s(ds, args.size, args.epochs, args.batch, args.workers))
        out = root / f"ours-{rep}"
        ours.append(ours_img_s(ds, out, args.size, args.epochs, args.batch, args.workers))
        print(f"  repeat {rep}: ours {ours[-1]:.2f} img/s, bare {bare[-1]:.2f} img/s")
    return max(ours), max(bare)


def time_to_accuracy(
    ds: Path, out: Path, mode: str, size: int, target: float
) -> tuple[float, float]:
    """Seconds from start (features included) until val accuracy >= target; best accuracy."""
    config = build_config(dataset=str(ds), out=str(out), mode=mode, epochs=8, image_size=size,
                          workers=2, patience=99)  # fmt: skip
    start, best = time.perf_counter(), 0.0
    for event in run_training(config):
        if isinstance(event, EpochEnd):
            best = max(best, float(event.row["val_acc"]))
            if best >= target:
                return time.perf_counter() - start, best
    return float("inf"), best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=96, help="Training images (4 classes).")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    per = {"train": args.images // 4, "val": 8, "test": 4}
    os.environ["OIFORGE_HOME"] = str(root / "home")  # no feature cache from earlier runs
    ds = make_dataset(root / "ds", classes=4, per_class=per, seed=1, with_classes_json=False,
                      image_size=(320, 240))  # fmt: skip
    print(f"torch threads {torch.get_num_threads()}, {args.images} train images, {args.size}px")
    ours, bare = compare_throughput(root, ds, args)
    print(f"finetune throughput: ours {ours:.1f} img/s, bare loop {bare:.1f} img/s, "
          f"ratio {ours / bare:.3f} (overhead {100 * (1 - ours / bare):+.1f}%)")  # fmt: skip
    for mode in ("probe", "finetune"):
        seconds, best = time_to_accuracy(ds, root / f"tta-{mode}", mode, args.size, args.target)
        print(f"time to val_acc >= {args.target}: {mode}: {seconds:.1f} s (best {best:.3f})")


if __name__ == "__main__":
    main()
