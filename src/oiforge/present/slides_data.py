"""Slides 0-3: the title, the problem, the data (selection, counts, losses, licences), method."""

from __future__ import annotations

import json
from collections import Counter
from html import escape

from oiforge.present.charts import Chart, Series, render_chart
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
from oiforge.present.photos import figure_html, licence_name, photos_html, save_photo

MAX_ROWS = 12
PHOTOS = 6
SPLITS = ("train", "val", "test")
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


STATUS_TEXT = {
    "placeholder": "Flickr's 'photo unavailable' image",
    "missing": "on no source",
    "bad_md5": "bytes differ from the catalog's MD5",
    "not_image": "not an image",
    "too_large": "over the size cap",
    "timeout": "timed out",
}
REASON_TEXT = {
    "missing": "not in the store (download failed)",
    "exact_duplicate_of": "exact copy of another photo",
    "exclude_list": "on the exclude list",
    "unknown_split": "in no known split",
    "crop_too_small": "box crop too small",
}


def status_text(status: str) -> str:
    if status.startswith("http_"):
        return f"HTTP {status[5:]} (gone from every source)"
    return STATUS_TEXT.get(status, status.replace("_", " "))


def reason_text(reason: str) -> str:
    if reason.startswith("near_duplicate_in_"):
        return f"near-duplicate of a photo kept in {reason.rsplit('_', 1)[-1]}"
    return REASON_TEXT.get(reason, reason.replace("_", " "))


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


def selection_slide(inputs: Inputs) -> Slide:
    sel, dataset = inputs.selection, inputs.dataset
    if isinstance(dataset, Missing):
        body = missing_block("dataset folder", dataset.why, dataset.command)
        return Slide(
            "data",
            "The data",
            body,
            "Without the dataset folder the deck cannot count the photos.",
            (),
        )
    left = _selection_text(inputs)
    right = _counts_table(dataset, sel)
    sources = [inputs.src(dataset.path, "manifest.parquet")]
    if not isinstance(sel, Missing):
        sources.insert(0, inputs.src(sel.path))
        if sel.spec_path:
            sources.insert(0, inputs.src(sel.spec_path))
    notes = (
        "Photos of one source image never sit in two splits: the test photos were never seen "
        "in training or in choosing the best epoch."
    )
    return Slide(
        "data", "The data: how it was selected", columns(left, right), notes, tuple(sources)
    )


def _selection_text(inputs: Inputs) -> str:
    sel = inputs.selection
    if isinstance(sel, Missing):
        return missing_block(sel.what, sel.why, sel.command)
    labels = ", ".join(
        f"{escape(src)} {fact('selection.source', n, num(n), key=src)}"
        for src, n in sel.sources.most_common()
    )
    lines = [
        f"Open Images {fact('selection.version', sel.version)}: "
        f"{fact('selection.images', sel.images, num(sel.images))} photos, "
        f"{fact('selection.rows', sel.rows, num(sel.rows))} label rows ({labels}).",
        "Labels: "
        + ("box crops, " + num(sel.boxes) + " boxes" if sel.boxes else "image-level labels")
        + (
            f", machine labels from confidence {sel.min_confidence:g}"
            if sel.min_confidence is not None and sel.min_confidence < 1
            else ", human-verified only"
        ),
    ]
    lines += _spec_lines(inputs)
    out = bullets(lines)
    if sel.spec is None:
        out += "\n\n" + missing_block(
            "the selection spec",
            f"selection.parquet keeps only its hash ({sel.spec_hash}); filters such as a no-people "
            "rule are in the spec YAML",
            f"oiforge present {inputs.run.path} --spec SPEC.yaml",
        )
    return out


def _spec_lines(inputs: Inputs) -> list[str]:
    sel = inputs.selection
    if isinstance(sel, Missing) or sel.spec is None:
        return []
    spec = sel.spec
    expanded = [c["name"] for c in spec.get("classes", []) if c.get("expand")]
    people = list(spec.get("exclude_images_with") or [])
    lines = [
        "No-people rule: photos that also show "
        + ", ".join(escape(p) for p in people)
        + " are left out."
        if people
        else "No exclusion rule: photos showing other classes (people too) are kept.",
        "Hierarchy: "
        + (
            ", ".join(escape(e) for e in expanded) + " with their sub-classes."
            if expanded
            else "the named classes only, no sub-classes."
        ),
    ]
    extra = [
        f"{k} {spec[k]}"
        for k in ("per_class", "balanced", "multi_label")
        if spec.get(k) not in (None, False)
    ]
    if extra:
        lines.append("Sampling: " + ", ".join(escape(str(e)) for e in extra) + ".")
    match = "matches" if spec.get("hash_matches") else "does **not** match"
    lines.append(
        f"Spec {code(sel.spec_path.name if sel.spec_path else '')}: its hash {match} "
        "selection.parquet's."
    )
    return lines


def _counts_table(dataset: DatasetFacts, sel: object) -> str:
    per_class = getattr(sel, "images_per_class", {}) or {}
    rows = []
    for name in dataset.classes[:MAX_ROWS]:
        picked = per_class.get(name)
        row = [
            cell(name),
            fact("selection.images_per_class", picked, num(picked), key=name)
            if picked is not None
            else "n/a",
        ]
        row += [
            fact(
                "manifest.count",
                dataset.count(s, name),
                num(dataset.count(s, name)),
                key=f"{s}/{name}",
            )
            for s in SPLITS
        ]
        rows.append(row)
    totals = ["**total**", num(sum(per_class.values())) if per_class else "n/a"]
    totals += [
        f"**{fact('manifest.split_count', dataset.count(s), num(dataset.count(s)), key=s)}**"
        for s in SPLITS
    ]
    more = len(dataset.classes) - MAX_ROWS
    tail = f"\n\n...and {more} more classes." if more > 0 else ""
    return table(["class", "selected", "train", "val", "test"], [*rows, totals]) + tail


def losses_slide(inputs: Inputs) -> Slide:
    dataset = inputs.dataset
    if isinstance(dataset, Missing):
        body = missing_block("dataset folder", dataset.why, dataset.command)
        return Slide("losses", "What was lost, and the licences", body, "", ())
    left, sources = _funnel(inputs, dataset)
    right = _licences(dataset)
    lock = dataset.lock
    if lock:
        right += "\n\n" + bullets(
            [
                f"Reproducible: {code(f'oiforge build --lock {dataset.path}/oiforge.lock')} "
                "rebuilds these files byte for byte (top hash "
                f"{code(str(lock.get('top_hash', ''))[:16])}...).",
            ]
        )
        sources.append(inputs.src(dataset.path, "oiforge.lock"))
    sources.append(inputs.src(dataset.path, "manifest.parquet"))
    notes = (
        "Dead Flickr links and 'photo unavailable' placeholders are normal for Open Images; "
        "they are counted, never silently dropped, and the build lists every exclusion."
    )
    return Slide(
        "losses",
        "What was lost, and why; the licences",
        columns(left, right),
        notes,
        tuple(sources),
        "wide-left",
    )


def _funnel(inputs: Inputs, dataset: DatasetFacts) -> tuple[str, list[str]]:
    rows, sources = [], []
    sel, dl = inputs.selection, inputs.download
    if not isinstance(sel, Missing):
        rows.append(
            [
                "selected photos",
                fact("selection.images", sel.images, num(sel.images)),
                inputs.src(sel.path),
            ]
        )
    if isinstance(dl, Missing):
        rows.append(["downloaded", "n/a", "journal missing"])
    else:
        for status, n in sorted(dl.statuses.items(), key=lambda kv: (kv[0] != "ok", -kv[1])):
            what = "downloaded, verified" if status == "ok" else f"lost: {status_text(status)}"
            example = dl.errors.get(status, [])
            note = f"e.g. {code(example[0][0])}: {escape(_short(example[0][1]))}" if example else ""
            rows.append([what, fact("journal.status", n, num(n), key=status), note])
        sources += [inputs.src(dl.store, "journal.sqlite")]
        if dl.stats:
            sources.append(inputs.src(dl.store, "stats.json"))
    for reason, n in dataset.excluded.most_common():
        rows.append(
            [
                f"excluded by build: {reason_text(reason)}",
                fact("excluded.reason", n, num(n), key=reason),
                "",
            ]
        )
    if dataset.excluded:
        sources.append(inputs.src(dataset.path, "excluded.parquet"))
    images = len({s.image_id for s in dataset.samples})
    rows.append(
        [
            "**photos in the dataset**",
            f"**{fact('manifest.images', images, num(images))}**",
            f"{fact('manifest.samples', len(dataset.samples), num(len(dataset.samples)))} samples "
            "(a photo gives one per box in box mode)",
        ]
    )
    body = table(
        ["step", "count", "note"],
        [[cell(r[0]) if not r[0].startswith("**") else r[0], r[1], r[2]] for r in rows],
        (1,),
    )
    if not isinstance(dl, Missing) and dl.stats.get("duration_s") is not None:
        s = dl.stats
        body += (
            f"\n\nDownload: "
            f"{fact('stats.duration_s', s['duration_s'], duration(float(s['duration_s'])))} at "
            f"{fact('stats.images_per_s', s.get('images_per_s'), str(s.get('images_per_s')))} "
            "photos/s."
        )
    if isinstance(dl, Missing):
        body += "\n\n" + missing_block(dl.what, dl.why, dl.command)
    return body, sources


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _licences(dataset: DatasetFacts) -> str:
    per_image = {s.image_id: s.license for s in dataset.samples}
    counts = Counter(per_image.values())
    total = sum(counts.values()) or 1
    rows = [
        [escape(licence_name(url)), fact("manifest.license", n, num(n), key=url), pct(n / total)]
        for url, n in counts.most_common(8)
    ]
    return "### Licence mix (photos)\n\n" + table(["licence", "photos", "share"], rows)


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
