"""Slide 4: the results: headline with its interval, per class, confusions, calibration, the
worst mistakes (credited)."""

from __future__ import annotations

import shutil
from pathlib import Path

from oiforge.present.facts import DatasetFacts, EvalFacts, Missing, SampleRow
from oiforge.present.figures import (
    CONFIDENT,
    ClassScore,
    class_scores,
    confident_mistakes,
    confusions,
    headline,
)
from oiforge.present.gather import Inputs
from oiforge.present.model import (
    Slide,
    bullets,
    cell,
    columns,
    fact,
    missing_block,
    num,
    pct,
    table,
)
from oiforge.present.pictures import figure_html, photos_html, save_photo
from oiforge.present.slides_data import MAX_ROWS
from oiforge.present.slides_intro import kpis

MATRIX_MAX = 10
MISTAKES = 6


def evaluated(inputs: Inputs, slide_id: str, title: str) -> EvalFacts | Slide:
    """The run's evaluation, or the slide that says it is missing and how to make it."""
    ev = inputs.evaluation
    if isinstance(ev, EvalFacts):
        return ev
    body = missing_block(ev.what, ev.why, ev.command)
    return Slide(slide_id, title, body, "Evaluate the run, then run present again.", ())


def interval(ci: tuple[float, float] | None, name: str, key: str | None = None) -> str:
    if ci is None:
        return "n/a"
    lo = fact(f"derived.{name}_ci_low", ci[0], pct(ci[0], 0), key=key)
    hi = fact(f"derived.{name}_ci_high", ci[1], pct(ci[1], 0), key=key)
    return f"{lo}–{hi}"


def results_slide(inputs: Inputs) -> Slide:
    ev = evaluated(inputs, "results", "The results")
    if isinstance(ev, Slide):
        return ev
    metrics = ev.metrics
    head = headline(metrics)
    items = [
        (
            fact(f"metrics.{head.field}", head.value, pct(head.value)),
            f"test {head.name}" + (", 95% CI below" if head.interval else ""),
        ),
        (
            fact("metrics.samples", head.samples, num(head.samples)),
            f"{metrics.get('split', 'test')} photos, never trained on",
        ),
    ]
    top = metrics.get("top_k") or {}
    if "5" in top and len(inputs.run.classes) > 5:
        items.append((fact("metrics.top_k.5", top["5"], pct(top["5"])), "top-5 accuracy"))
    macro = (metrics.get("macro") or {}).get("f1")
    if isinstance(macro, float):
        items.append((fact("metrics.macro.f1", macro, f"{macro:.2f}"), "macro F1"))
    text = kpis(items)
    if head.interval:
        shown = interval(head.interval, head.field)
        text += f"\n\n{head.name.capitalize()} 95% interval (Wilson): {shown}."
    right = _per_class_table(class_scores(metrics), inputs.run.task)
    notes = (
        f"{head.samples} test photos: each one moves the accuracy by "
        f"{100 / max(head.samples, 1):.1f} points, hence the wide intervals. Recall = the share "
        "of a class's photos found."
    )
    return Slide(
        "results",
        "The results",
        f"{text}\n\n{right}",
        notes,
        (inputs.src(inputs.run.path, "metrics.json"),),
    )


def _per_class_table(scores: list[ClassScore], task: str) -> str:
    shown = scores if len(scores) <= MAX_ROWS else sorted(scores, key=lambda c: c.score)[:MAX_ROWS]
    if task == "multilabel":
        rows = [
            [
                cell(c.name),
                fact("metrics.per_class.ap", c.score, f"{c.score:.2f}", key=c.name),
                fact("metrics.per_class.support", c.support, num(c.support), key=c.name),
            ]
            for c in shown
        ]
        return table(["class", "AP", "positives"], rows)
    rows = [
        [
            cell(c.name),
            fact("metrics.per_class.precision", c.precision, pct(c.precision, 0), key=c.name),
            fact("metrics.per_class.recall", c.score, pct(c.score, 0), key=c.name),
            interval(c.interval, "recall", c.name),
            fact("metrics.per_class.f1", c.f1, f"{c.f1:.2f}", key=c.name),
            fact("metrics.per_class.support", c.support, num(c.support), key=c.name),
        ]
        for c in shown
    ]
    note = f"\n\nThe {MAX_ROWS} weakest of {len(scores)} classes." if len(scores) > MAX_ROWS else ""
    return table(["class", "precision", "recall", "95% CI", "F1", "photos"], rows) + note


def confusion_slide(inputs: Inputs) -> Slide:
    ev = evaluated(inputs, "confusion", "Confusions and calibration")
    if isinstance(ev, Slide):
        return ev
    metrics = ev.metrics
    names = [n for n, _ in inputs.run.classes]
    left = _matrix(metrics, names) if len(names) <= MATRIX_MAX else _top_confusions(metrics, names)
    right, sources = _calibration(inputs, metrics)
    notes = (
        "Rows are the true class, columns the model's answer; the diagonal is right. "
        "Calibration: when the model says 80%, is it right 80% of the time?"
    )
    return Slide(
        "confusion",
        "Confusions and calibration",
        columns(left, right),
        notes,
        (inputs.src(inputs.run.path, "metrics.json"), *sources),
    )


def _matrix(metrics: dict[str, object], names: list[str]) -> str:
    matrix = metrics.get("confusion")
    if not isinstance(matrix, list) or not matrix:
        return "No confusion matrix in metrics.json (multi-label runs have none)."
    head = ["true ↓ / predicted →", *(cell(n) for n in names)]
    rows = []
    for t, row in enumerate(matrix[: len(names)]):
        cells = []
        for p, n in enumerate(row[: len(names)]):
            shown = fact("metrics.confusion", n, num(n), key=f"{t},{p}")
            cells.append(
                f"**{shown}**"
                if t == p
                else (shown if n else f'<span class="muted">{shown}</span>')
            )
        rows.append([cell(names[t]), *cells])
    return table(head, rows)


def _top_confusions(metrics: dict[str, object], names: list[str]) -> str:
    top = confusions(metrics, names)[:MAX_ROWS]
    rows = [
        [
            cell(t),
            cell(p),
            fact("metrics.confusion", n, num(n), key=f"{names.index(t)},{names.index(p)}"),
        ]
        for t, p, n in top
    ]
    return "### Most frequent confusions\n\n" + table(
        ["true", "predicted as", "photos"], rows, (2,)
    )


def _calibration(inputs: Inputs, metrics: dict[str, object]) -> tuple[str, tuple[str, ...]]:
    ece = metrics.get("ece")
    parts = []
    if isinstance(ece, float):
        parts.append(
            f"Expected calibration error: {fact('metrics.ece', ece, f'{ece:.3f}')} "
            f"(confidence is off by {pct(ece)} on average)."
        )
    plot = inputs.run.plots.get("reliability.png")
    sources: tuple[str, ...] = ()
    if plot:
        shutil.copyfile(plot, inputs.assets / "reliability.png")
        picture = f'<img src="{inputs.assets.name}/reliability.png" alt="reliability diagram">'
        parts.append(f'<figure class="chart calibration">{picture}</figure>')
        sources = (inputs.src(inputs.run.path, "reliability.png"),)
    return "\n\n".join(parts) or "No calibration in metrics.json.", sources


def mistakes_slide(inputs: Inputs) -> Slide:
    ev = evaluated(inputs, "mistakes", "The worst mistakes")
    if isinstance(ev, Slide):
        return ev
    worst = [m for m in ev.metrics.get("worst_mistakes") or [] if isinstance(m, dict)]
    if not worst:
        body = "No mistakes on the test photos (or metrics.json lists none)."
        return Slide(
            "mistakes",
            "The worst mistakes",
            body,
            "",
            (inputs.src(inputs.run.path, "metrics.json"),),
        )
    dataset = inputs.dataset
    figures, listed = [], []
    for m in worst[:MISTAKES]:
        heading = (
            f"{m.get('true')} → {m.get('predicted')} ({pct(float(m.get('confidence') or 0), 0)})"
        )
        sample = None if isinstance(dataset, Missing) else find_sample(dataset, m)
        asset = (
            save_photo(dataset, sample, inputs.assets)
            if sample and isinstance(dataset, DatasetFacts)
            else None
        )
        if asset and sample:
            figures.append(figure_html(asset, sample, heading))
        else:
            listed.append(f"{cell(heading)}: {cell(m.get('key', ''))}")
    body = photos_html(figures) if figures else ""
    if listed:
        body += ("\n\n" if body else "") + bullets(listed)
    body += _error_counts(ev)
    notes = (
        "The photos the model got wrong with the highest confidence: often a label to check, "
        "a photo showing two classes, or a class the data does not cover well."
    )
    sources = [inputs.src(inputs.run.path, "metrics.json")]
    if ev.predictions:
        sources.append(inputs.src(inputs.run.path, "predictions.csv"))
    if figures and isinstance(dataset, DatasetFacts):
        sources.append(inputs.src(dataset.path, "manifest.parquet"))
    return Slide(
        "mistakes", "The worst mistakes (most confident, wrong)", body, notes, tuple(sources)
    )


def _error_counts(evaluation: EvalFacts) -> str:
    """How many test photos are wrong, and how many confidently (from predictions.csv)."""
    preds = evaluation.predictions
    if not preds:
        return ""
    wrong = sum(1 for p in preds if p.true != p.predicted)
    sure = len(confident_mistakes(preds))
    return (
        f"\n\n{fact('predictions.wrong', wrong, num(wrong))} of {num(len(preds))} test photos "
        f"wrong; {fact('predictions.confident_mistakes', sure, num(sure))} of them with "
        f"{pct(CONFIDENT, 0)} confidence or more (predictions.csv)."
    )


def find_sample(dataset: DatasetFacts, mistake: dict[str, object]) -> SampleRow | None:
    """The manifest row of a mistake: by its key's file name, else by its ImageID."""
    key = str(mistake.get("key") or "")
    stem = Path(key).name.rsplit(".", 1)[0]
    attribution = mistake.get("attribution")
    image_id = str(attribution.get("image_id", "")) if isinstance(attribution, dict) else ""
    for s in dataset.samples:
        if s.split == "test" and (
            s.key == stem or Path(s.sample_path).name.rsplit(".", 1)[0] == stem
        ):
            return s
    return next((s for s in dataset.samples if image_id and s.image_id == image_id), None)
