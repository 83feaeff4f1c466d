"""Slides 0, 1 and 4: the title, the problem (classes, credited photos), the method."""

from __future__ import annotations

from collections.abc import Callable
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
from oiforge.train.config import DEFAULT_LR

PHOTOS = 6


MODE_TEXT = {
    "probe": "linear probe: the pretrained network's features are computed once, and only a "
    "linear layer is trained on them (fast on CPU, hard to overfit)",
    "finetune": "fine-tuning: the new head first with the network frozen, then the whole "
    "network at a lower learning rate for its pretrained layers",
    "scratch": "a small CNN trained from random weights (no pretrained features)",
    "partial": "partial fine-tuning: the last blocks of the pretrained network and the head "
    "train on cached activations of augmented views, the head starting from the linear probe",
    "auto": "automatic: the cheap candidates first (probe, MLP head, partial, fine-tuning), "
    "within a time limit; a costlier one is kept only if validation says it is better by "
    "more than chance",
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
    took = run.training_time()
    if took is not None:
        seconds, key = took
        items.append((fact(f"summary.{key}", seconds, duration(seconds)), "training time"))
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
        _fitting_text(cfg, summary),
    ]
    tried = _candidates(summary)
    curves, chart_sources = ("", ()) if tried else _curves(inputs)
    notes = (
        f"Training stopped: {summary.get('stopped', 'not recorded')}. The weights kept are those "
        f"of the best validation epoch ({summary.get('best_epoch', 'n/a')}), not the last one."
        + "".join(
            f" {c['name']}: {c['status']}." for c in _candidate_rows(summary)
            if str(c.get("status", "finished")) != "finished"
        )
    )  # fmt: skip
    sources = (
        inputs.src(inputs.run.path, "config.yaml"),
        inputs.src(inputs.run.path, "summary.json"),
        *chart_sources,
    )
    body = columns(bullets(lines), tried or curves)
    return Slide("method", "The method", body, notes, sources, "columns")


def _candidate_rows(summary: dict[str, object]) -> list[dict[str, object]]:
    """The candidates an ``--mode auto`` run lists in summary.json (none for other runs)."""
    found = summary.get("candidates")
    if not isinstance(found, list):
        return []
    return [c for c in found if isinstance(c, dict) and isinstance(c.get("name"), str)]


def _fitting_text(cfg: dict[str, object], summary: dict[str, object]) -> str:
    """How the kept model was fitted: a linear probe by L-BFGS (no learning rate, no epochs
    to stop early), the others by AdamW; for an auto run, its pick or each member of the
    average it kept."""
    kept = _kept_models(cfg, summary)
    if kept[0][0] is None:
        return "Fitting: " + _how(cfg, kept[0][1], None) + "."
    by_how: dict[str, list[str]] = {}  # members fitted alike, named once
    for name, fitted in kept:
        by_how.setdefault(_how(cfg, fitted, name), []).append(
            fact("candidate.name", name, key=name)
        )
    hows = "; ".join(f"{', '.join(who)}: {how}" for how, who in by_how.items())
    names = [str(name) for name, _ in kept]
    lead = f"the average of {', '.join(names)}" if len(names) > 1 else names[0]
    return f"Kept: {escape(lead)} ({hows})."


def _kept_models(
    cfg: dict[str, object], summary: dict[str, object]
) -> list[tuple[str | None, dict[str, object]]]:
    """The models a run kept, each as (its auto candidate's name, or None for a run of one
    mode; what it was fitted with: a candidate's row, or config.yaml over summary.json)."""
    rows = {str(c["name"]): c for c in _candidate_rows(summary)}
    if cfg.get("mode") != "auto" or not rows:
        return [(None, {**summary, **cfg})]
    chosen = str(summary.get("chosen", ""))
    return [(n, rows.get(n, {})) for n in _members(rows.get(chosen, {})) or [chosen]]


def _linear_probe(fitted: dict[str, object]) -> bool:
    """Whether ``fitted`` (config.yaml's keys or a candidate's row) is a linear probe: a
    logistic regression fitted by L-BFGS, no learning rate, no epochs to stop early."""
    return fitted.get("mode") == "probe" and (fitted.get("head") or "linear") == "linear"


def _how(cfg: dict[str, object], fitted: dict[str, object], name: str | None) -> str:
    """What fitting one model meant (``fitted``: config.yaml's keys, or a candidate's row;
    ``name``: the candidate, briefer, or None for the run itself)."""
    mode = str(fitted.get("mode"))
    if _linear_probe(fitted):
        c_key, c_name = ("probe_C", "summary.probe_C") if name is None else ("C", "candidate.C")
        text = "logistic regression on the frozen features, fitted to convergence by L-BFGS"
        if name is not None:
            text = "logistic regression by L-BFGS"
        if isinstance(fitted.get(c_key), int | float):
            text += f", L2 strength C {fact(c_name, fitted[c_key], key=name)} chosen by "
            text += "cross-validation" if name else "cross-validation on the training photos"
        return text
    what = {
        "probe": "an MLP head on the frozen features",
        "partial": "the head and the network's last blocks, on cached activations",
        "finetune": "the head, then the whole network",
        "scratch": "the whole network from random weights",
    }.get(mode, mode)
    default = DEFAULT_LR.get(mode)
    lr_text = (
        cfg_fact(cfg, "lr") if cfg.get("lr") is not None
        else f"{default:g} (default)" if default is not None
        else "the mode's default"
    )  # fmt: skip
    if name is not None:  # an auto run's member: the table says what it trains
        return f"AdamW, learning rate {lr_text}"
    text = f"{what} by AdamW, learning rate {lr_text}"
    return (
        f"{text}, weight decay {cfg_fact(cfg, 'weight_decay')}, label smoothing "
        f"{cfg_fact(cfg, 'label_smoothing')}, batch {cfg_fact(cfg, 'batch_size')}"
    )


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
    parts = [f"Overfitting: {how} (crops of one photo never straddle two splits)"]
    if _kept_by_lbfgs_only(cfg, summary):
        parts.append(
            "; the linear probe's L2 strength is chosen on the training photos alone, so the "
            "validation photos only confirm it"
        )
        if "best_epoch" in summary and cfg.get("mode") != "auto":
            parts.append(
                f": weights of L-BFGS round {fact('summary.best_epoch', summary['best_epoch'])}"
                f" of {fact('summary.epochs_run', summary.get('epochs_run'))}"
            )
        return "".join(parts) + "."
    parts.append(
        f"; early stopping on {cfg_fact(cfg, 'monitor')} with patience {cfg_fact(cfg, 'patience')}"
    )
    if "best_epoch" in summary and cfg.get("mode") != "auto":  # auto: the pick's epochs
        parts.append(
            f": best epoch {fact('summary.best_epoch', summary['best_epoch'])} of "
            f"{fact('summary.epochs_run', summary.get('epochs_run'))} run"
        )
    return "".join(parts) + "."


def _kept_by_lbfgs_only(cfg: dict[str, object], summary: dict[str, object]) -> bool:
    """Whether every model kept is a linear probe (fitted by L-BFGS, no epochs to stop)."""
    return all(_linear_probe(fitted) for _, fitted in _kept_models(cfg, summary))


#: What an auto candidate trains, as a person reads it.
CANDIDATE_TEXT = {"probe": "linear probe", "mlp": "MLP head", "finetune": "whole network"}


def _candidates(summary: dict[str, object]) -> str:
    """``--mode auto`` runs list their candidates in summary.json: what each trained, its
    validation score and time, and what became of it (kept, in the kept average, not kept,
    skipped and why)."""
    rows = _candidate_rows(summary)
    if not rows:
        return ""
    chosen = str(summary.get("chosen", ""))
    kept = next((c for c in rows if c["name"] == chosen), {})
    in_average = set(_members(kept))
    multilabel = any("val_map" in c for c in rows)
    score_key, score_name = ("val_map", "val mAP") if multilabel else ("val_acc", "val acc")
    body = []
    for c in rows:
        name = str(c["name"])
        blocks, members_of = c.get("train_blocks"), _members(c)
        what = CANDIDATE_TEXT.get(name, str(c.get("mode")))
        if isinstance(blocks, int):
            what = f"{blocks} block{'s' if blocks != 1 else ''} + head"
        if members_of:
            what = " + ".join(members_of)
        outcome = (
            "kept" if name == chosen else "in the average" if name in in_average
            else "not kept" if c.get("status") == "finished"
            else str(c.get("status", "")).split(" (")[0]  # the reason in full: the notes
        )  # fmt: skip
        body.append(
            [
                fact("candidate.name", name, key=name),
                cell(what),
                _candidate_fact(c, score_key, pct),
                _candidate_fact(c, "val_loss", lambda v: f"{v:.3f}"),
                _candidate_fact(c, "seconds", duration),
                cell(outcome),
            ]
        )
    headers = ["candidate", "trains", score_name, "val loss", "time", "outcome"]
    text = "### Candidates tried (summary.json)\n\n" + table(headers, body, (2, 3, 4))
    of = summary.get("curves_of")
    if isinstance(of, str):
        text += (
            f"\n\nThe run's per-epoch record (metrics.csv, curves.png, report.html) is "
            f"{fact('summary.curves_of', of)}'s."
        )
    return text


def _members(row: dict[str, object]) -> list[str]:
    """The candidates an ensemble row averages (none for a single model)."""
    members = row.get("members")
    return [str(m) for m in members] if isinstance(members, list) else []


def _candidate_fact(row: dict[str, object], key: str, show: Callable[[float], str]) -> str:
    value = row.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    return fact(f"candidate.{key}", value, show(float(value)), key=str(row["name"]))


def _curves(inputs: Inputs) -> tuple[str, tuple[str, ...]]:
    """The per-epoch accuracy and loss charts of metrics.csv (a run of one mode: an auto run's
    slide shows its candidates instead, and names whose curves the run keeps)."""
    epochs = inputs.run.epochs
    if not epochs or "val_acc" not in epochs[0]:
        run = inputs.run.path
        return missing_block(
            "metrics.csv", "no per-epoch record of this run", f"oiforge train DATASET --out {run}"
        ), ()
    cfg = inputs.run.config
    step = "L-BFGS round" if _linear_probe(cfg) else "epoch"
    best = inputs.run.summary.get("best_epoch")
    vlines = [(float(best), "best")] if isinstance(best, int | float) and best else []
    charts = [_chart(epochs, "acc", step, vlines), _chart(epochs, "loss", step, vlines)]
    assets = inputs.assets
    images = []
    for kind, chart in charts:
        (assets / f"curves-{kind}.svg").write_text(render_chart(chart), encoding="utf-8")
        what = "accuracy" if kind == "acc" else "loss"
        images.append(f'<img src="{assets.name}/curves-{kind}.svg" alt="{what} per {step}">')
    last, epoch = epochs[-1], str(int(epochs[-1]["epoch"]))
    train = fact("metrics_csv.train_acc", last["train_acc"], pct(last["train_acc"]), key=epoch)
    val = fact("metrics_csv.val_acc", last["val_acc"], pct(last["val_acc"]), key=epoch)
    caption = f"{step[0].upper()}{step[1:]} {epoch}: train accuracy {train}, validation {val}."
    html = f'<figure class="chart">{"".join(images)}<figcaption>{caption}</figcaption></figure>'
    return html, (inputs.src(inputs.run.path, "metrics.csv"),)


def _chart(
    epochs: list[dict[str, float]],
    kind: str,
    step: str,
    vlines: list[tuple[float, str]],
) -> tuple[str, Chart]:
    grey, blue = "#94a3b8", "#2563eb"
    train = Series("train", [(r["epoch"], r[f"train_{kind}"]) for r in epochs], grey)
    val = Series("validation", [(r["epoch"], r[f"val_{kind}"]) for r in epochs], blue)
    if kind == "acc":
        return kind, Chart([train, val], step, "accuracy", vlines=vlines, width=820,
                           height=390, x_integer=True)  # fmt: skip
    hi = max(max(r["train_loss"], r["val_loss"]) for r in epochs) * 1.1
    return kind, Chart([train, val], step, "loss", y_range=(0.0, hi), vlines=vlines, width=820,
                       height=390, y_percent=False, x_integer=True)  # fmt: skip
