"""Benchmark of the train stage (CPU), each figure against a peer measured in the same run.

1. Loop overhead: `oiforge.train.run_training` (finetune, everything trainable) vs a bare,
   hand-written PyTorch loop with the same model (EfficientNet-Lite0, offline ImageNet
   weights), the same data pipeline (torchvision ImageFolder with our JPEG decode and the same
   transforms), batch size, DataLoader workers, optimizer and number of steps. Runs alternate
   (bare, ours, bare, ours, ...); medians. Two figures: the training steps alone, and whole
   epochs (steps + validation + our checkpoint, best weights and metrics.csv). Target <= 10%.
2. Multi-label step vs single-label step: oiforge's training step (``steps.train_step``) with
   the same model, batch and inputs, once with cross-entropy on class targets and once with
   the masked multi-label BCE on (batch, classes) targets of which ~60% are unknown (Open
   Images-like). Alternating, medians. Target: overhead <= 10%.
3. Time to accuracy on CPU: probe (features once + a head) vs finetune, on a dataset built from
   the bundled mirror sample (`make demo` -> demo-out/dataset), if ``--sample-dataset`` is given.

Writes bench/results/bench_train.json (``record.write_results``).

    .venv/bin/python bench/bench_train.py [--images 256] [--size 96] [--repeats 3]
        [--sample-dataset demo-out/dataset --target 0.6] [--skip-loop]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from oiforge.progress import EpochEnd, PhaseStart, Step
from oiforge.train import build_config, run_training
from oiforge.train.heads import MultiLabelLoss
from oiforge.train.images import decode_image, eval_transform, resize_size, train_transform
from oiforge.train.models import create_model, preprocessing_for
from oiforge.train.steps import StepContext, train_step
from record import Row, write_results
from train.synthetic import make_dataset

Times = tuple[float, float, int]  # training-steps seconds, whole-epochs seconds, steps


def ours(ds: Path, out: Path, args: argparse.Namespace) -> Times:
    """oiforge's loop: seconds in training steps, seconds for whole epochs, steps taken."""
    config = build_config(
        dataset=str(ds), out=str(out), mode="finetune", head_epochs=0, epochs=args.epochs,
        image_size=args.size, batch_size=args.batch, workers=args.workers, augment="light",
        patience=99,
    )  # fmt: skip
    loop_s, first, last, steps, start, loop_now, step_now = 0.0, 0.0, 0.0, 0, 0.0, 0.0, 0
    for event in run_training(config):
        now = time.perf_counter()
        if isinstance(event, PhaseStart) and event.phase == "epoch":
            start, first = now, first or now
        elif isinstance(event, Step) and event.phase == "train":
            loop_now, step_now = now - start, event.step
        elif isinstance(event, EpochEnd):
            loop_s, steps, last = loop_s + loop_now, steps + step_now, now
    return loop_s, last - first, steps


def _read(min_side: int, path: str) -> object:
    return decode_image(Path(path).read_bytes(), min_side)


def bare(ds: Path, args: argparse.Namespace) -> Times:
    """The same work written by hand: ImageFolder + DataLoader + AdamW + cross-entropy."""
    from torchvision.datasets import ImageFolder

    prep = preprocessing_for("efficientnet_lite0", args.size, 0.875)
    read = functools.partial(_read, resize_size(args.size, 0.875))
    data = ImageFolder(str(ds / "train"), train_transform(prep, "light"), loader=read)
    val = ImageFolder(str(ds / "val"), eval_transform(prep), loader=read)
    common = {"batch_size": args.batch, "num_workers": args.workers}
    loader = torch.utils.data.DataLoader(data, shuffle=True, drop_last=True, **common)
    val_loader = torch.utils.data.DataLoader(val, **common)
    model = create_model("efficientnet_lite0", len(data.classes), pretrained=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    loop_s, steps, first = 0.0, 0, time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        start = time.perf_counter()
        for x, y in loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
        loop_s += time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            for x, y in val_loader:
                loss_fn(model(x), y)
    return loop_s, time.perf_counter() - first, steps


def compare(root: Path, ds: Path, args: argparse.Namespace) -> list[Row]:
    runs: dict[str, list[Times]] = {"bare": [], "ours": []}
    rows = []
    for rep in range(args.repeats):
        runs["bare"].append(bare(ds, args))
        runs["ours"].append(ours(ds, root / f"ours-{rep}", args))
        b, o = runs["bare"][-1], runs["ours"][-1]
        print(f"  repeat {rep}: steps ours {o[0]:.2f} s / bare {b[0]:.2f} s ({o[2]}/{b[2]} "
              f"steps); epochs ours {o[1]:.2f} s / bare {b[1]:.2f} s; load {_load()}")  # fmt: skip
    for i, what in ((0, "training steps"), (1, "whole epochs (+val, +checkpoint)")):
        o = statistics.median(t[i] for t in runs["ours"])
        b = statistics.median(t[i] for t in runs["bare"])
        pairs = zip(runs["ours"], runs["bare"], strict=True)
        pair = statistics.median(x[i] / y[i] for x, y in pairs)
        n = runs["ours"][0][2] * args.batch
        rates = f"ours {o:.2f} s ({n / o:.1f} img/s), bare {b:.2f} s ({n / b:.1f} img/s)"
        print(
            f"{what}: {rates}: overhead {100 * (o / b - 1):+.1f}% (pairs {100 * (pair - 1):+.1f}%)"
        )
        rows.append(
            Row(f"loop: {what}", round(o, 3), "s", "bare PyTorch loop", round(b, 3),
                round(o / b, 3), "<= 1.10", o / b <= 1.10, {"pairs_ratio": round(pair, 3)})
        )  # fmt: skip
    return rows


def step_seconds(multilabel: bool, args: argparse.Namespace, classes: int = 50) -> float:
    """Seconds for ``--steps`` oiforge training steps (after 2 warm-up steps), one model."""
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", classes, multilabel=multilabel)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=gen)
    if multilabel:  # ~20% verified positive, ~20% verified negative, the rest unknown
        u = torch.rand(args.batch, classes, generator=gen)
        y = torch.where(u < 0.2, 1.0, torch.where(u < 0.4, 0.0, -1.0))
        loss_fn: torch.nn.Module = MultiLabelLoss("bce")
    else:
        y = torch.randint(classes, (args.batch,), generator=gen)
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    ctx = StepContext(
        module=model.train(), optimizer=torch.optim.AdamW(model.parameters(), lr=1e-4),
        loss_fn=loss_fn, device=torch.device("cpu"), set_lr=lambda _: None,
        should_stop=lambda: "",
    )  # fmt: skip
    for _ in range(2):
        train_step(ctx, x, y)
    start = time.perf_counter()
    for _ in range(args.steps):
        train_step(ctx, x, y)
    return time.perf_counter() - start


def multilabel_overhead(args: argparse.Namespace) -> Row:
    """Multi-label step vs single-label step, alternating, medians."""
    single, multi = [], []
    for rep in range(args.repeats):
        for multilabel in (False, True) if rep % 2 == 0 else (True, False):  # order alternates
            (multi if multilabel else single).append(step_seconds(multilabel, args))
        print(f"  repeat {rep}: multi-label {multi[-1]:.2f} s, single-label {single[-1]:.2f} s "
              f"({args.steps} steps); load {_load()}")  # fmt: skip
    m, s = statistics.median(multi), statistics.median(single)
    print(f"multi-label train step vs single-label (lite0, 50 classes, batch {args.batch}, "
          f"{args.size} px): {1000 * m / args.steps:.0f} ms vs {1000 * s / args.steps:.0f} ms "
          f"per step: overhead {100 * (m / s - 1):+.1f}% (target <= 10%)")  # fmt: skip
    return Row(
        "multi-label step (masked BCE, 60% unknown) per step", round(m / args.steps, 4), "s",
        "single-label step (cross-entropy)", round(s / args.steps, 4), round(m / s, 3),
        "<= 1.10", m / s <= 1.10, {"batch": args.batch, "size": args.size, "classes": 50},
    )  # fmt: skip


def time_to_accuracy(ds: Path, out: Path, mode: str, args: argparse.Namespace) -> str:
    """Seconds from start (features included) until val accuracy >= target."""
    config = build_config(dataset=str(ds), out=str(out), mode=mode, epochs=args.tta_epochs,
                          image_size=args.tta_size, workers=args.workers, patience=99)  # fmt: skip
    start, best = time.perf_counter(), 0.0
    for event in run_training(config):
        if isinstance(event, EpochEnd):
            best = max(best, float(event.row["val_acc"]))
            if best >= args.target:
                return f"{time.perf_counter() - start:.1f} s (epoch {event.row['epoch']})"
    seconds = time.perf_counter() - start
    return f"not reached in {args.tta_epochs} epochs, {seconds:.1f} s (best {best:.3f})"


def gpu_figures(args: argparse.Namespace) -> None:
    """With CUDA: training images/s of EfficientNet-Lite0 at 224 px with AMP and channels_last
    (and without, the peer), the GPU's utilisation while it ran, and the `reference_img_s`
    line that calibrates `oiforge estimate`'s table from this measured row. Skipped on CPU."""
    if not torch.cuda.is_available():
        print("no CUDA device: GPU figures (img/s, utilisation, AMP, channels_last) skipped")
        return
    rates = {}
    for amp in (False, True):
        rates[amp], util = _gpu_rate(amp, args.gpu_batch, args.gpu_steps)
        busy = f"utilisation {statistics.mean(util):.0f}%" if util else "utilisation n/a"
        print(
            f"GPU {torch.cuda.get_device_name()}: {rates[amp]:.0f} img/s (AMP and "
            f"channels_last {'on' if amp else 'off'}), {busy}"
        )
    print(f"AMP + channels_last speed-up {rates[True] / rates[False]:.2f}x")
    print(f"calibrate estimate: reference_img_s: {rates[True]:.0f}  (this GPU, lite0, 224 px)")


def _gpu_rate(amp: bool, batch: int, steps: int) -> tuple[float, list[float]]:
    dev = torch.device("cuda")
    model = create_model("efficientnet_lite0", 10).to(dev)
    x = torch.randn(batch, 3, 224, 224, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    if amp:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    busy: list[float] = []
    for i in range(steps + 5):
        if i == 5:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        util = _utilisation() if i % 10 == 9 else None
        busy += [util] if util is not None else []
    torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start), busy


def _utilisation() -> float | None:
    try:
        return float(torch.cuda.utilization())
    except Exception:  # no NVML on this machine
        return None


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=256, help="Training images (4 classes).")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both loops).")
    parser.add_argument("--sample-dataset", type=Path, help="A build of the mirror sample.")
    parser.add_argument("--target", type=float, default=0.6)
    parser.add_argument("--tta-epochs", type=int, default=10)
    parser.add_argument("--tta-size", type=int, default=160)
    parser.add_argument("--gpu-batch", type=int, default=128)
    parser.add_argument("--gpu-steps", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10, help="Steps per multi-label timing.")
    parser.add_argument("--skip-loop", action="store_true", help="Only the multi-label figure.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # OpenMP spinning on a shared machine hurts both alike
    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    os.environ["OIFORGE_HOME"] = str(root / "home")  # no feature cache from earlier runs
    per = {"train": args.images // 4, "val": 16, "test": 4}
    ds = make_dataset(root / "ds", classes=4, per_class=per, seed=1, with_classes_json=False,
                      image_size=(320, 240))  # fmt: skip
    print(
        f"torch threads {torch.get_num_threads()}, {args.images} train images 320x240, "
        f"{args.size} px, batch {args.batch}, workers {args.workers}, load {_load()}"
    )
    rows = [] if args.skip_loop else compare(root, ds, args)
    rows.append(multilabel_overhead(args))
    gpu_figures(args)
    if args.sample_dataset:
        for mode in ("probe", "finetune"):
            line = time_to_accuracy(args.sample_dataset, root / f"tta-{mode}", mode, args)
            print(f"time to val_acc >= {args.target} ({mode}, {args.tta_size} px): {line}")
    print(f"wrote {write_results('bench_train', rows)}")


if __name__ == "__main__":
    main()
