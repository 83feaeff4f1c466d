"""Slides 8 and 9: the cost of this run and of the next scale, and the problems met."""

from __future__ import annotations

from typing import Any

from oiforge.present.facts import DatasetFacts, EvalFacts, Missing
from oiforge.present.figures import headline
from oiforge.present.gather import Inputs
from oiforge.present.measure import LearningCurve
from oiforge.present.model import (
    Slide,
    bullets,
    cell,
    columns,
    duration,
    fact,
    missing_block,
    num,
    pct,
    plural,
    table,
    usd,
)
from oiforge.present.slides_data import reason_text, status_text
from oiforge.present.slides_next import CURVE_SOURCE, next_images

OVERFIT_GAP = 0.1  # train accuracy this far above validation's
NEXT_SCALE_ROWS = 5  # GPU machines on the cost slide besides this one (the cheapest)


ESTIMATE_SOURCE = "present/estimate.json"


def measured_times(inputs: Inputs) -> list[tuple[str, float, str, str]]:
    """(step, seconds, fact name, source) of every time this run's artefacts record."""
    out: list[tuple[str, float, str, str]] = []
    dl, run, curve, est = inputs.download, inputs.run, inputs.curve, inputs.estimate
    if not isinstance(dl, Missing) and isinstance(dl.stats.get("duration_s"), int | float):
        took = float(dl.stats["duration_s"])
        out.append(("download", took, "stats.duration_s", inputs.src(dl.store, "stats.json")))
    trained = run.training_time()
    if trained is not None:
        seconds, key = trained
        what = {
            "probe": "training (the head; features not timed)",
            "auto": "training (every candidate, auto)",
        }.get(str(run.config.get("mode")), "training")
        out.append((what, seconds, f"summary.{key}", inputs.src(run.path, "summary.json")))
    if isinstance(curve, LearningCurve) and curve.cost_s:
        out.append(("learning curve (25%, 50%)", curve.cost_s, "curve.cost_s", CURVE_SOURCE))
    if not isinstance(est, Missing) and est.measured_s:
        out.append(
            ("estimate (throughput here)", est.measured_s, "estimate.measured_s", ESTIMATE_SOURCE)
        )
    return out


def cost_slide(inputs: Inputs) -> Slide:
    times = measured_times(inputs)
    rate, rate_source = inputs.price
    rows = [[s, fact(name, sec, duration(sec)), src] for s, sec, name, src in times]
    total = sum(t[1] for t in times)
    rows.append(["**total**", f"**{duration(total)}**", ""])
    left = "### This run, measured\n\n" + table(["step", "time", "source"], rows, (1,))
    left += (
        f"\n\nAt {fact('derived.usd_per_hour', rate, usd(rate))}/hour ({cell(rate_source)}): "
        f"**{fact('derived.run_usd', total / 3600 * rate, usd(total / 3600 * rate))}**. "
        "Build and evaluation times are not recorded in their files."
    )
    right, sources = _next_scale(inputs)
    notes = (
        "The next run's cost scales the throughput `oiforge estimate` measured here by the GPU "
        "table's relative speeds; a GPU faster than its CPUs can decode is marked data-bound."
    )
    found = tuple(dict.fromkeys([*(t[3] for t in times), *sources]))
    return Slide("cost", "Cost: this run, and the next scale", columns(left, right), notes, found)


def _next_scale(inputs: Inputs) -> tuple[str, tuple[str, ...]]:
    est = inputs.estimate
    if isinstance(est, Missing):
        return "### The next scale\n\n" + missing_block(est.what, est.why, est.command), ()
    images, why = next_images(inputs)
    now = inputs.dataset.count("train") if isinstance(inputs.dataset, DatasetFacts) else est.images
    factor = images / max(now, 1)
    rate = inputs.price[0]
    rows = []
    shown_rows = _cheapest(est.rows, factor, rate)
    for r, hours, cost in shown_rows:
        img_s = fact("estimate.img_s", r["img_s"], f"{float(r['img_s']):,.0f}", key=str(r["name"]))
        rows.append(
            [cell(r["name"]), img_s, duration(hours * 3600), usd(cost), cell(r.get("note", ""))]
        )
    left_out = len(est.rows) - len(shown_rows)
    date = inputs.gpu_table.get("table_date", "undated")
    shown = fact("derived.next_train_images", images, num(images))
    text = (
        f"### The next scale: {shown} training photos\n\n"
        f"({cell(why)}; today {num(now)}; {plural(est.passes, 'pass')} over the data)\n\n"
        + table(["where", "img/s", "time", "USD", "note"], rows, (1, 2, 3))
        + f"\n\nGPU prices: table of {fact('gpu.table_date', date)}; measured here: "
        f"{est.here_img_s:.1f} img/s ({cell(est.here_what)})."
        + (f" {plural(left_out, 'dearer machine')} in {ESTIMATE_SOURCE}." if left_out else "")
    )
    return text, (ESTIMATE_SOURCE, "oiforge/data/train/gpu_instances.yaml")


def _cheapest(
    rows: list[dict[str, Any]], factor: float, rate: float
) -> list[tuple[dict[str, Any], float, float]]:
    """(row, hours, USD) at the next scale: this machine's measured row, then the
    ``NEXT_SCALE_ROWS`` cheapest others in the table's order (a slide holds a short table)."""
    priced = []
    for r in rows:
        hours = float(r["hours"]) * factor
        measured = r.get("note") == "measured"
        priced.append((r, hours, hours * rate if measured else float(r["usd"]) * factor))
    here = [p for p in priced if p[0].get("note") == "measured"]
    others = [p for p in priced if p[0].get("note") != "measured"]
    keep = {id(p[0]) for p in sorted(others, key=lambda p: p[2])[:NEXT_SCALE_ROWS]}
    return here + [p for p in others if id(p[0]) in keep]


def problems_slide(inputs: Inputs) -> Slide:
    items, sources = [], []
    dl = inputs.download
    if not isinstance(dl, Missing):
        lost = {s: n for s, n in dl.statuses.items() if s != "ok"}
        if lost:
            parts = ", ".join(
                f"{cell(status_text(s))} {fact('journal.status', n, num(n), key=s)}"
                for s, n in sorted(lost.items())
            )
            lost_n = plural(sum(lost.values()), "photo")
            items.append(f"Download: {lost_n} lost ({parts}); retried, recorded, not fatal.")
            sources.append(inputs.src(dl.store, "journal.sqlite"))
    ds = inputs.dataset
    if isinstance(ds, DatasetFacts) and ds.excluded:
        parts = ", ".join(
            f"{cell(reason_text(r))} {fact('excluded.reason', n, num(n), key=r)}"
            for r, n in ds.excluded.most_common()
        )
        items.append(f"Build: {plural(sum(ds.excluded.values()), 'sample')} excluded ({parts}).")
        sources.append(inputs.src(ds.path, "excluded.parquet"))
    items += _training_problems(inputs)
    items += _evaluation_problems(inputs)
    if isinstance(ds, DatasetFacts):
        flagged = sum(1 for s in ds.samples if s.flags)
        if flagged:
            shown = fact("manifest.flagged", flagged, num(flagged))
            items.append(f"Review flags on {shown} exported samples (contact_sheet.html).")
    items += [f"Not available: {cell(m.what)} ({cell(m.why)})." for m in inputs.missing]
    body = bullets(items or ["No problem recorded in the artefacts."])
    notes = "Each line is counted from a file; none of these stopped the pipeline."
    sources += [
        inputs.src(inputs.run.path, "summary.json"),
        inputs.src(inputs.run.path, "metrics.csv"),
    ]
    return Slide("problems", "Problems met", body, notes, tuple(dict.fromkeys(sources)))


def _training_problems(inputs: Inputs) -> list[str]:
    summary, epochs, out = inputs.run.summary, inputs.run.epochs, []
    stopped = summary.get("stopped")
    whose = summary.get("curves_of")  # an auto run: the candidate whose record the run has
    of = f" ({fact('summary.curves_of', whose)})" if isinstance(whose, str) else ""
    if isinstance(stopped, str) and stopped not in ("completed", "converged"):
        out.append(f"Training{of} stopped early: {fact('summary.stopped', stopped)}.")
    out += _auto_problems(summary)
    best = summary.get("best_epoch")
    row = next((r for r in epochs if r.get("epoch") == best), None)
    if row and "train_acc" in row and "val_acc" in row:
        last = epochs[-1]
        gap = last["train_acc"] - last["val_acc"]
        what = "Overfitting" if gap >= OVERFIT_GAP else "Train and validation stayed close"
        out.append(
            f"{what}{of}: at the best epoch train accuracy {pct(row['train_acc'])}, validation "
            f"{pct(row['val_acc'])}; by epoch {int(last['epoch'])} train reached "
            f"{pct(last['train_acc'])} while validation was {pct(last['val_acc'])}."
        )
    bad = summary.get("undecodable_train_images")
    if isinstance(bad, int) and bad:
        out.append(
            f"{fact('summary.undecodable_train_images', bad)} training photos could not be decoded."
        )
    return out


def _auto_problems(summary: dict[str, Any]) -> list[str]:
    """An auto run's candidates that were skipped for lack of time, or failed."""
    rows = [c for c in summary.get("candidates") or [] if isinstance(c, dict)]
    skipped = [str(c["name"]) for c in rows if str(c.get("status", "")).startswith("skipped")]
    failed = [c for c in rows if str(c.get("status", "")).startswith("failed")]
    out = []
    if skipped:
        out.append(
            f"Auto: {plural(len(skipped), 'candidate')} not trained for lack of time "
            f"({cell(', '.join(skipped))}); a larger --max-minutes would try them."
        )
    out += [f"Auto: candidate {cell(c['name'])} {cell(c['status'])}." for c in failed]
    return out


def _evaluation_problems(inputs: Inputs) -> list[str]:
    ev = inputs.evaluation
    if not isinstance(ev, EvalFacts):
        return []
    out, metrics = [], ev.metrics
    if metrics.get("split") == "val":
        out.append("No test split: evaluated on val, which also chose the best epoch (optimistic).")
    head = headline(metrics)
    if head.interval and head.samples < 100:
        width = head.interval[1] - head.interval[0]
        out.append(
            f"Small test set: {num(head.samples)} photos; the 95% interval is {pct(width, 0)} wide."
        )
    if metrics.get("undecodable"):
        bad = fact("metrics.undecodable", metrics["undecodable"])
        out.append(f"{bad} test photos could not be decoded.")
    return out
