"""Slides 5-8: cost, problems met, next steps (learning curve, labels to review), and the
operational architecture with its sizing and the managed-service break-even."""

from __future__ import annotations

import math
from typing import Any

from oiforge.present.charts import Chart, Series, render_chart
from oiforge.present.curve import LearningCurve
from oiforge.present.diagram import Plan, render_diagram
from oiforge.present.facts import DatasetFacts, EvalFacts, Missing
from oiforge.present.figures import PowerFit, class_scores, confusions, headline, power_fit
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
    plural,
    table,
    usd,
)
from oiforge.present.sizing import LOADS_RPS, Capacity, break_even, replicas_for
from oiforge.present.slides_data import reason_text, status_text

#: Beyond this factor of today's data an extrapolated learning curve is not evidence.
MAX_EXTRAPOLATION = 100.0
DEFAULT_SCALE = 10
SMALL_TEST = 20
OVERFIT_GAP = 0.1  # train accuracy this far above validation's
CURVE_SOURCE = "present/learning_curve.json"
ESTIMATE_SOURCE = "present/estimate.json"


def _missing(value: object) -> str:
    assert isinstance(value, Missing)
    return missing_block(value.what, value.why, value.command)


# --- cost ------------------------------------------------------------------------------


def measured_times(inputs: Inputs) -> list[tuple[str, float, str, str]]:
    """(step, seconds, fact name, source) of every time this run's artefacts record."""
    out: list[tuple[str, float, str, str]] = []
    dl, run, curve, est = inputs.download, inputs.run, inputs.curve, inputs.estimate
    if not isinstance(dl, Missing) and isinstance(dl.stats.get("duration_s"), int | float):
        took = float(dl.stats["duration_s"])
        out.append(("download", took, "stats.duration_s", inputs.src(dl.store, "stats.json")))
    seconds = run.summary.get("train_seconds")
    if isinstance(seconds, int | float):
        what = (
            "training (the head; features not timed)"
            if run.config.get("mode") == "probe"
            else "training"
        )
        out.append(
            (what, float(seconds), "summary.train_seconds", inputs.src(run.path, "summary.json"))
        )
    if isinstance(curve, LearningCurve) and curve.cost_s:
        out.append(("learning curve (25%, 50%)", curve.cost_s, "curve.cost_s", CURVE_SOURCE))
    if not isinstance(est, Missing) and est.measured_s:
        out.append(
            ("estimate (throughput here)", est.measured_s, "estimate.measured_s", ESTIMATE_SOURCE)
        )
    return out


def next_images(inputs: Inputs) -> tuple[int, str]:
    """Training photos for the next run: what the learning curve says reaches the target,
    else ``DEFAULT_SCALE`` times today's."""
    now = inputs.dataset.count("train") if isinstance(inputs.dataset, DatasetFacts) else 0
    curve, target = inputs.curve, pct(inputs.options.target, 0)
    fallback = f"{DEFAULT_SCALE}x today's training photos"
    if isinstance(curve, LearningCurve) and now:
        fit = _overall_fit(curve)
        need = fit.images_for(1 - inputs.options.target) if fit else math.inf
        if need <= now:
            return now, f"the learning curve puts today's photos at {target} already"
        if need <= now * MAX_EXTRAPOLATION:
            return math.ceil(need), f"the learning curve's estimate for {target} {curve.metric}"
        fallback += f": the learning curve does not reach {target} within {MAX_EXTRAPOLATION:.0f}x"
    return max(now, 1) * DEFAULT_SCALE, fallback


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
        return "### The next scale\n\n" + _missing(est), ()
    images, why = next_images(inputs)
    now = inputs.dataset.count("train") if isinstance(inputs.dataset, DatasetFacts) else est.images
    factor = images / max(now, 1)
    rate = inputs.price[0]
    rows = []
    for r in est.rows:
        hours = float(r["hours"]) * factor
        cost = float(r["usd"]) * factor if r.get("note") != "measured" else hours * rate
        img_s = fact("estimate.img_s", r["img_s"], f"{float(r['img_s']):,.0f}", key=str(r["name"]))
        rows.append(
            [cell(r["name"]), img_s, duration(hours * 3600), usd(cost), cell(r.get("note", ""))]
        )
    date = inputs.gpu_table.get("table_date", "undated")
    shown = fact("derived.next_train_images", images, num(images))
    text = (
        f"### The next scale: {shown} training photos\n\n"
        f"({cell(why)}; today {num(now)}; {plural(est.passes, 'pass')} over the data)\n\n"
        + table(["where", "img/s", "time", "USD", "note"], rows, (1, 2, 3))
        + f"\n\nGPU prices: table of {fact('gpu.table_date', date)}; measured here: "
        f"{est.here_img_s:.1f} img/s ({cell(est.here_what)})."
    )
    return text, (ESTIMATE_SOURCE, "oiforge/data/train/gpu_instances.yaml")


# --- problems met ------------------------------------------------------------------------


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
    if isinstance(stopped, str) and stopped != "completed":
        out.append(f"Training stopped early: {fact('summary.stopped', stopped)}.")
    best = summary.get("best_epoch")
    row = next((r for r in epochs if r.get("epoch") == best), None)
    if row and "train_acc" in row and "val_acc" in row:
        last = epochs[-1]
        gap = last["train_acc"] - last["val_acc"]
        what = "Overfitting" if gap >= OVERFIT_GAP else "Train and validation stayed close"
        out.append(
            f"{what}: at the best epoch train accuracy {pct(row['train_acc'])}, validation "
            f"{pct(row['val_acc'])}; by epoch {int(last['epoch'])} train reached "
            f"{pct(last['train_acc'])} while validation was {pct(last['val_acc'])}."
        )
    bad = summary.get("undecodable_train_images")
    if isinstance(bad, int) and bad:
        out.append(
            f"{fact('summary.undecodable_train_images', bad)} training photos could not be decoded."
        )
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


# --- next steps --------------------------------------------------------------------------


def _overall_fit(curve: LearningCurve) -> PowerFit | None:
    floor = 0.5 / max(1, max(p.test_samples for p in curve.points))
    return power_fit([(p.train_images, 1 - p.score) for p in curve.points], floor)


def curve_slide(inputs: Inputs) -> Slide:
    curve = inputs.curve
    title = "Next steps: where more photos help"
    if isinstance(curve, Missing):
        return Slide(
            "next-data",
            title,
            _missing(curve),
            "The learning curve is measured by present itself.",
            (),
        )
    target = inputs.options.target
    chart = _curve_chart(curve, target)
    (inputs.assets / "learning-curve.svg").write_text(chart, encoding="utf-8")
    pts = ", ".join(
        f"{fact('curve.score', p.score, pct(p.score), key=str(p.fraction))} with "
        + fact("curve.train_images", p.train_images, num(p.train_images), key=str(p.fraction))
        + " photos"
        for p in curve.points
    )
    picture = f'<img src="{inputs.assets.name}/learning-curve.svg" alt="learning curve">'
    left = (
        f'<figure class="chart">{picture}</figure>\n\n'
        f"{curve.metric.capitalize()} on the same test photos: {pts}."
    )
    right = _class_needs(inputs, curve)
    notes = (
        "Measured, not assumed: the same recipe retrained on 25% and 50% of the training photos. "
        "The dashed line is a power law fitted to the points; far beyond them it is a guess."
    )
    return Slide(
        "next-data",
        title,
        columns(left, right),
        notes,
        ("present/learning_curve.json", inputs.src(inputs.run.path, "metrics.json")),
    )


def _curve_chart(curve: LearningCurve, target: float) -> str:
    fit = _overall_fit(curve)
    pts = [(float(p.train_images), p.score) for p in curve.points]
    series = [Series(f"measured {curve.metric}", pts, "#2563eb")]
    if fit is not None:
        hi = pts[-1][0] * 8
        xs = [pts[0][0] * (hi / pts[0][0]) ** (i / 40) for i in range(41)]
        series.append(
            Series("power-law fit", [(x, 1 - fit.error_at(x)) for x in xs], "#94a3b8", True, False)
        )
    return render_chart(
        Chart(
            series,
            "training photos (log scale)",
            curve.metric,
            x_log=True,
            hlines=[(target, f"target {pct(target, 0)}")],
            height=470,
        )
    )


def _class_needs(inputs: Inputs, curve: LearningCurve) -> str:
    ev = inputs.evaluation
    assert isinstance(ev, EvalFacts)
    target = inputs.options.target
    support = {c.name: c.support for c in class_scores(ev.metrics)}
    rows = []
    for name in sorted(support, key=lambda n: curve.points[-1].per_class.get(n, (0, 1.0))[1])[:8]:
        pts = [p.per_class[name] for p in curve.points if name in p.per_class]
        now_n, now_score = pts[-1]
        fit = power_fit([(n, 1 - s) for n, s in pts], 0.5 / max(1, support[name]))
        rows.append(
            [cell(name), pct(now_score, 0), num(now_n), _need_text(fit, now_n, target, now_score)]
        )
    small = min(support.values() or [0]) < SMALL_TEST
    note = (
        f"\n\nFewer than {SMALL_TEST} test photos per class: read these as a rough guide."
        if small
        else ""
    )
    metric = "recall" if curve.metric == "accuracy" else "AP"
    return (
        f"### The weakest classes: photos needed for {pct(target, 0)} {metric}\n\n"
        + table(["class", metric, "train photos", "more needed"], rows)
        + note
    )


def _need_text(fit: PowerFit | None, now: int, target: float, score: float) -> str:
    if score >= target:
        return "at target"
    if fit is None or fit.b <= 0.02:
        return "no gain measured: check labels"
    need = fit.images_for(1 - target)
    if need > now * MAX_EXTRAPOLATION:
        return f"over {num(now * MAX_EXTRAPOLATION)} (beyond the curve)"
    return f"~{num(max(0, math.ceil(need) - now))}"


def actions_slide(inputs: Inputs) -> Slide:
    items = []
    ev = inputs.evaluation
    if isinstance(ev, EvalFacts):
        names = [n for n, _ in inputs.run.classes]
        pairs = confusions(ev.metrics, names)[:3]
        if pairs:
            items.append(
                "Confusions to look at: "
                + "; ".join(f"{cell(t)} taken for {cell(p)} ({n}x)" for t, p, n in pairs)
                + "."
            )
        ids = []
        for m in ev.metrics.get("worst_mistakes") or []:
            att = m.get("attribution") if isinstance(m, dict) else None
            if isinstance(att, dict) and att.get("image_id"):
                ids.append(str(att["image_id"]))
        if ids:
            items.append(
                "Labels to review (confident mistakes): "
                + ", ".join(code(i) for i in ids[:8])
                + "."
            )
    sel, dl = inputs.selection, inputs.download
    if not isinstance(sel, Missing) and not isinstance(dl, Missing):
        browse = code(f"oiforge browse {sel.path} --store {dl.store}")
        items.append(f"Review them with {browse}; exclusions go to the exclude list builds read.")
    images, why = next_images(inputs)
    items.append(
        f"Grow the dataset to about {num(images)} training photos ({cell(why)}): raise "
        "`per_class` in the spec, then rerun select, download, build."
    )
    if inputs.run.config.get("mode") == "probe":
        items.append(
            "Fine-tune once there is more data (`oiforge train --mode finetune`): a probe cannot "
            "adapt the pretrained features."
        )
    if isinstance(ev, EvalFacts) and headline(ev.metrics).samples < 100:
        items.append(
            "Hold out more test photos: under 100, the 95% interval of the accuracy stays wider "
            "than ±10 points."
        )
    items.append(
        "Ship the model behind the architecture of the next slide; retrain when monitoring or "
        "review finds enough new labels."
    )
    notes = "Each step is derived from the numbers on the previous slides."
    return Slide(
        "next-steps",
        "Next steps",
        bullets(items),
        notes,
        (inputs.src(inputs.run.path, "metrics.json"),),
    )


# --- architecture ------------------------------------------------------------------------


def architecture_slide(inputs: Inputs) -> Slide:
    cap = inputs.capacity
    title = "The operational architecture (open source first)"
    if isinstance(cap, Missing):
        plan = Plan(
            2, int(inputs.prices["replica"]["cores"]), 0.0, inputs.options.peak_rps, "not exported"
        )
    else:
        plan = Plan(
            replicas_for(inputs.options.peak_rps, cap, inputs.prices).replicas,
            cap.cores,
            cap.rps_per_replica,
            inputs.options.peak_rps,
            str(inputs.run.config.get("model")),
        )
    (inputs.assets / "architecture.svg").write_text(render_diagram(plan), encoding="utf-8")
    picture = f'<img src="{inputs.assets.name}/architecture.svg" alt="architecture diagram">'
    body = f'<div class="diagram">{picture}</div>'
    notes = (
        "Every box is an open-source part: oiforge, ONNX Runtime, nginx or Kubernetes, MinIO, "
        "Prometheus, Grafana, PostgreSQL. Only training rents a GPU, for hours a month."
    )
    return Slide(
        "architecture", title, body, notes, ("oiforge/docs/serving.md", "derived: sizing slide")
    )


def sizing_slide(inputs: Inputs) -> Slide:
    cap, prices = inputs.capacity, inputs.prices
    title = "Sizing, and when a managed service pays for itself"
    if isinstance(cap, Missing):
        return Slide("sizing", title, _missing(cap), "", ())
    replica = prices["replica"]
    ms = fact("measured.ms_per_request", cap.ms_per_request, f"{cap.ms_per_request:.1f} ms")
    rps = fact("measured.rps_per_replica", cap.rps_per_replica, f"{cap.rps_per_replica:,.0f}")
    left = (
        f"One request costs {ms} of one core ({cell(cap.source)}). A replica = "
        f"{cell(replica['name'])}: {rps} req/s, planned at "
        f"{pct(float(replica['utilisation']), 0)} busy.\n\n"
        + table(
            ["peak load", "replicas", "USD / month"],
            [
                [f"{num(r.load_rps)} req/s", num(r.replicas), usd(r.usd_per_month)]
                for r in (replicas_for(load, cap, prices) for load in LOADS_RPS)
            ],
        )
    )
    right = _break_even_text(cap, prices)
    notes = (
        "Break-even: a managed service pays for itself while its bill is below what the "
        "replicas plus the people running them cost; above that volume, self-host."
    )
    src = "measured here" if cap.measured_here else "bench/results/bench_serve.json"
    return Slide(
        "sizing",
        title,
        columns(left, right),
        notes,
        (src, f"oiforge/data/present/prices.yaml ({prices['table_date']})"),
    )


def _break_even_text(cap: Capacity, prices: dict[str, Any]) -> str:
    ops, replica, hours = (
        prices.get("operations") or {},
        prices["replica"],
        prices["hours_per_month"],
    )
    lines = [
        f"Self-hosted minimum: {replica['min_replicas']} replicas x "
        f"{usd(float(replica['usd_per_hour']))}/h x {hours} h + {ops.get('hours_per_month', 0)} h "
        f"of operations x {usd(float(ops.get('usd_per_hour', 0)))}/h."
    ]
    for b in break_even(cap, prices):
        if b.volume_per_month is not None:
            volume = round(b.volume_per_month)
            shown = fact("derived.break_even_predictions", volume, num(volume))
            lines.append(
                f"{cell(b.service)}: the same {usd(b.self_usd_per_month)}/month at **{shown}** "
                f"predictions/month (~{volume / float(hours) / 3600:.2f} req/s on average): "
                "below that, managed is cheaper; above, self-host."
            )
        elif b.managed_usd_per_month is not None:
            saved = b.managed_usd_per_month - b.self_usd_per_month
            verdict = (
                f"pays for itself only if it saves over {usd(saved)}/month of engineering."
                if saved > 0
                else "cheaper at every volume."
            )
            lines.append(
                f"{cell(b.service)}: {usd(b.managed_usd_per_month)}/month always on vs "
                f"{usd(b.self_usd_per_month)} self-hosted: {verdict}"
            )
    date = fact("prices.table_date", prices["table_date"])
    return "### Managed vs self-hosted\n\n" + bullets(lines) + f"\n\nPrices: {date}."
