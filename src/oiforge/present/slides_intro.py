"""Slides 0, 1 and 4: the title, the problem (classes, credited photos), the method."""

from __future__ import annotations

import json
from html import escape

from oiforge.present.facts import DatasetFacts, Missing, SampleRow
from oiforge.present.figures import headline
from oiforge.present.gather import Inputs
from oiforge.present.model import (
    Slide,
    bullets,
    cell,
    code,
    columns,
    duration,
    fact,
    missing_block,
    num,
    pct,
    table,
)
from oiforge.present.pictures import (
    Chart,
    Series,
    figure_html,
    photos_html,
    render_chart,
    save_photo,
)
from oiforge.present.slides_data import MAX_ROWS

PHOTOS = 6


MODE_TEXT = {
    "probe": "linear probe: the pretrained network's features are computed once, and only a "
    "linear layer is trained on them (fast on CPU, hard to overfit)",
    "finetune": "fine-tuning: the new head first with the network frozen, then the whole "
    "network at a lower learning rate for its pretrained layers",
    "scratch": "a small CNN trained from random weights (no pretrained features)",
}


AUGMENT_TEXT = {
    "none": "none: every epoch sees the same pixels",
    "light": "light: random crops keeping 35-100% of the photo, and mirror flips; photos of a "
    "class differ in framing and side, never in colour, so colours are left alone",
    "strong": "strong: random crops (8-100%), flips, colour jitter, TrivialAugment and random "
    "erasing, for small datasets whose photos look alike",
    "randaugment": "RandAugment with colour jitter and random erasing",
}


def cfg_fact(cfg: dict[str, object], key: str) -> str:
    """A value of config.yaml, as a fact."""
    return fact(f"config.{key}", cfg.get(key))


def kpis(items: list[tuple[str, str]]) -> str:
    cells = "".join(
        f'<div class="kpi">{f}<span class="label">{escape(t)}</span></div>' for f, t in items
    )
    return f'<div class="kpis">{cells}</div>'


def deck_title(inputs: Inputs) -> str:
    names = [n for n, _ in inputs.run.classes]
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    kind = "multi-label tagger" if inputs.run.task == "multilabel" else "photo classifier"
    return f"A {kind} for {shown}, from Open Images"


def title_slide(inputs: Inputs) -> Slide:
    run, items = inputs.run, []
    if not isinstance(inputs.evaluation, Missing):
        head = headline(inputs.evaluation.metrics)
        items.append(
            (fact(f"metrics.{head.field}", head.value, pct(head.value)), f"test {head.name}")
        )
    items.append((fact("labels.classes", len(run.classes)), "classes"))
    if not isinstance(inputs.dataset, Missing):
        items.append(
            (
                fact(
                    "manifest.samples",
                    len(inputs.dataset.samples),
                    num(len(inputs.dataset.samples)),
                ),
                "photos in the dataset",
            )
        )
    seconds = run.summary.get("train_seconds")
    if isinstance(seconds, int | float):
        items.append((fact("summary.train_seconds", seconds, duration(seconds)), "training time"))
    body = (
        kpis(items)
        + "\n\n"
        + bullets(
            [f"run {code(str(run.path))}", f"model {code(str(run.config.get('model')))}"]
            + [f"{escape(m.what)}: missing (see its slide)" for m in inputs.missing]
        )
    )
    notes = (
        "Every number in this deck is read from oiforge's files; each slide names its sources "
        "in the footer. Press N for these notes, the arrow keys or a click to move."
    )
    return Slide(
        "title", deck_title(inputs), body, notes, (inputs.src(run.path, "labels.json"),), "title"
    )


def problem_slide(inputs: Inputs) -> Slide:
    run = inputs.run
    multi = run.task == "multilabel"
    task = (
        "**multi-label** classification: every class that applies to a photo (0 to "
        if multi
        else "**single-label** classification: each photo gets exactly one of "
    )
    n = fact("labels.classes", len(run.classes))
    lines = [
        f"Task: {task}{n} classes{')' if multi else ''}.",
        "In: a photo (JPEG, PNG, ...). Out: a probability per class, top-k first.",
    ]
    counts = inputs.dataset if not isinstance(inputs.dataset, Missing) else None
    rows = [
        [cell(name), code(mid) if mid else "", _train_count(counts, name)]
        for name, mid in run.classes[:MAX_ROWS]
    ]
    more = len(run.classes) - MAX_ROWS
    left = "\n\n".join([bullets(lines), table(["class", "MID", "train photos"], rows, (2,))])
    if more > 0:
        left += f"\n\n...and {more} more classes (labels.json)."
    right, sources = _class_photos(inputs)
    notes = (
        f"The model answers one question per photo: which of the {len(run.classes)} classes it "
        "shows. The photos are Flickr photos from Open Images, each credited as its licence asks."
    )
    return Slide(
        "problem",
        "The problem",
        columns(left, right),
        notes,
        (inputs.src(run.path, "labels.json"), *sources),
        "wide-right",
    )


def _train_count(dataset: DatasetFacts | None, name: str) -> str:
    if dataset is None:
        return "n/a"
    n = dataset.count("train", name)
    return fact("manifest.count", n, num(n), key=f"train/{name}")


def example_samples(dataset: DatasetFacts, limit: int = PHOTOS) -> list[SampleRow]:
    """One training photo per class (the first by ImageID, with an author if any)."""
    by_class: dict[str, list[SampleRow]] = {}
    for s in sorted(dataset.samples, key=lambda s: (s.split != "train", not s.author, s.key)):
        by_class.setdefault(s.class_name, []).append(s)
    return [rows[0] for name in dataset.classes[:limit] if (rows := by_class.get(name))]


def _class_photos(inputs: Inputs) -> tuple[str, tuple[str, ...]]:
    dataset = inputs.dataset
    if isinstance(dataset, Missing):
        return missing_block("example photos", "the dataset folder is missing", dataset.command), ()
    figures = []
    for sample in example_samples(dataset):
        asset = save_photo(dataset, sample, inputs.assets)
        if asset:
            figures.append(figure_html(asset, sample, sample.class_name))
    return photos_html(figures), (inputs.src(dataset.path, "manifest.parquet"),)


def method_slide(inputs: Inputs) -> Slide:
    cfg, summary = inputs.run.config, inputs.run.summary
    mode = str(cfg.get("mode"))
    pretrained = "ImageNet-pretrained" if cfg.get("pretrained") else "random init"
    lines = [
        f"Model: {cfg_fact(cfg, 'model')} ({pretrained}), "
        f"{cfg_fact(cfg, 'image_size')} px input; mode "
        f"{fact('config.mode', mode)}: {MODE_TEXT.get(mode, 'see config.yaml')}.",
        "Augmentation: " + _augment_text(cfg),
        _overfit_text(inputs),
        f"Optimiser: AdamW, learning rate {cfg_fact(cfg, 'lr')}, weight decay "
        f"{cfg_fact(cfg, 'weight_decay')}, label smoothing "
        f"{cfg_fact(cfg, 'label_smoothing')}, batch {cfg_fact(cfg, 'batch_size')}.",
    ]
    left = bullets(lines) + _candidates(summary)
    right, chart_sources = _curves(inputs)
    notes = (
        f"Training stopped: {summary.get('stopped', 'not recorded')}. The weights kept are those "
        f"of the best validation epoch ({summary.get('best_epoch', 'n/a')}), not the last one."
    )
    sources = (
        inputs.src(inputs.run.path, "config.yaml"),
        inputs.src(inputs.run.path, "summary.json"),
        *chart_sources,
    )
    return Slide("method", "The method", columns(left, right), notes, sources, "columns")


def _augment_text(cfg: dict[str, object]) -> str:
    aug = str(cfg.get("augment"))
    text = f"{fact('config.augment', aug)}: " + escape(
        AUGMENT_TEXT.get(aug, "see config.yaml").split(": ", 1)[-1]
    )
    if cfg.get("mode") == "probe" and aug != "none":
        text += (
            " (not applied in probe mode: the head trains on cached features of the "
            "unaugmented photos)"
        )
    return text + "."


def _overfit_text(inputs: Inputs) -> str:
    cfg, summary = inputs.run.config, inputs.run.summary
    split = (
        (inputs.dataset.lock.get("build") or {}).get("split")
        if not isinstance(inputs.dataset, Missing)
        else None
    )
    how = "Open Images' official splits" if split == "official" else "splits drawn by source photo"
    parts = [
        f"Overfitting: {how} (crops of one photo never straddle two splits); early stopping on "
        f"{cfg_fact(cfg, 'monitor')} with patience {cfg_fact(cfg, 'patience')}"
    ]
    if "best_epoch" in summary:
        parts.append(
            f": best epoch {fact('summary.best_epoch', summary['best_epoch'])} of "
            f"{fact('summary.epochs_run', summary.get('epochs_run'))} run"
        )
    return "".join(parts) + "."


def _candidates(summary: dict[str, object]) -> str:
    """``--mode auto`` runs list their candidates in summary.json: show them as trained."""
    found = summary.get("candidates")
    if not isinstance(found, list) or not found or not all(isinstance(c, dict) for c in found):
        return ""
    keys = list(dict.fromkeys(k for c in found for k in c))[:5]
    rows = [[cell(_value(c.get(k, ""))) for k in keys] for c in found[:6]]
    return "\n\n### Candidates tried (summary.json)\n\n" + table(keys, rows, ())


def _value(value: object) -> str:
    """A value of a JSON file as a person reads it (never a Python repr)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _curves(inputs: Inputs) -> tuple[str, tuple[str, ...]]:
    epochs = inputs.run.epochs
    if not epochs or "val_acc" not in epochs[0]:
        run = inputs.run.path
        return missing_block(
            "metrics.csv", "no per-epoch record of this run", f"oiforge train DATASET --out {run}"
        ), ()
    best = inputs.run.summary.get("best_epoch")
    vlines = [(float(best), "best")] if isinstance(best, int | float) and best else []
    acc = Chart(
        [
            Series("train", [(r["epoch"], r["train_acc"]) for r in epochs], "#94a3b8"),
            Series("validation", [(r["epoch"], r["val_acc"]) for r in epochs], "#2563eb"),
        ],
        "epoch",
        "accuracy",
        vlines=vlines,
        width=820,
        height=390,
    )
    loss_hi = max(max(r["train_loss"], r["val_loss"]) for r in epochs) * 1.1
    loss = Chart(
        [
            Series("train", [(r["epoch"], r["train_loss"]) for r in epochs], "#94a3b8"),
            Series("validation", [(r["epoch"], r["val_loss"]) for r in epochs], "#2563eb"),
        ],
        "epoch",
        "loss",
        y_range=(0.0, loss_hi),
        vlines=vlines,
        width=820,
        height=390,
        y_percent=False,
    )
    assets = inputs.assets
    (assets / "curves-acc.svg").write_text(render_chart(acc), encoding="utf-8")
    (assets / "curves-loss.svg").write_text(render_chart(loss), encoding="utf-8")
    last, epoch = epochs[-1], str(int(epochs[-1]["epoch"]))
    train = fact("metrics_csv.train_acc", last["train_acc"], pct(last["train_acc"]), key=epoch)
    val = fact("metrics_csv.val_acc", last["val_acc"], pct(last["val_acc"]), key=epoch)
    caption = f"Epoch {epoch}: train accuracy {train}, validation {val}."
    html = (
        f'<figure class="chart"><img src="{assets.name}/curves-acc.svg" alt="accuracy per epoch">'
        f'<img src="{assets.name}/curves-loss.svg" alt="loss per epoch">'
        f"<figcaption>{caption}</figcaption></figure>"
    )
    return html, (inputs.src(inputs.run.path, "metrics.csv"),)
