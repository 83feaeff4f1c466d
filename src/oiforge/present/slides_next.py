"""Slides 9-13: where more photos help (the learning curve), next steps, the operational
architecture with its sizing, and when a managed service pays for itself."""

from __future__ import annotations

import math
from typing import Any

from oiforge.present.facts import DatasetFacts, EvalFacts, Missing
from oiforge.present.figures import (
    CONFIDENT,
    PowerFit,
    class_scores,
    confident_mistakes,
    confusions,
    headline,
    power_fit,
    source_id,
)
from oiforge.present.gather import Inputs
from oiforge.present.measure import (
    LOADS_RPS,
    Capacity,
    LearningCurve,
    break_even,
    overall_fit,
    replicas_for,
)
from oiforge.present.model import (
    Slide,
    bullets,
    cell,
    code,
    columns,
    fact,
    missing_block,
    num,
    pct,
    plural,
    table,
    usd,
)
from oiforge.present.pictures import Chart, Plan, Series, render_chart, render_diagram

MAX_EXTRAPOLATION = 100.0


DEFAULT_SCALE = 10


SMALL_TEST = 20


CURVE_SOURCE = "present/learning_curve.json"


def next_images(inputs: Inputs) -> tuple[int, str]:
    """Training photos for the next run: what the learning curve says reaches the target,
    else ``DEFAULT_SCALE`` times today's."""
    now = inputs.dataset.count("train") if isinstance(inputs.dataset, DatasetFacts) else 0
    curve, target = inputs.curve, pct(inputs.options.target, 0)
    fallback = f"{DEFAULT_SCALE}x today's training photos"
    if isinstance(curve, LearningCurve) and now:
        fit = overall_fit(curve)
        need = fit.images_for(1 - inputs.options.target) if fit else math.inf
        if need <= now:
            return now, f"the learning curve puts today's photos at {target} already"
        if need <= now * MAX_EXTRAPOLATION:
            return math.ceil(need), f"the learning curve's estimate for {target} {curve.metric}"
        fallback += f": the learning curve does not reach {target} within {MAX_EXTRAPOLATION:.0f}x"
    return max(now, 1) * DEFAULT_SCALE, fallback


def curve_slide(inputs: Inputs) -> Slide:
    curve = inputs.curve
    title = "Next steps: where more photos help"
    if isinstance(curve, Missing):
        return Slide(
            "next-data",
            title,
            missing_block(curve.what, curve.why, curve.command),
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
    fit = overall_fit(curve)
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


def _labels_to_review(ev: EvalFacts) -> list[str]:
    """The photos predicted wrongly with confidence (predictions.csv), else the worst
    mistakes metrics.json lists."""
    keys = confident_mistakes(ev.predictions)
    if not keys:
        worst = [m for m in ev.metrics.get("worst_mistakes") or [] if isinstance(m, dict)]
        keys = [str(m.get("key") or "") for m in worst]
    ids = list(dict.fromkeys(source_id(k) for k in keys if k))
    if not ids:
        return []
    shown = ", ".join(code(i) for i in ids[:8]) + (
        f" and {len(ids) - 8} more" if len(ids) > 8 else ""
    )
    what = f"{plural(len(ids), 'photo')} wrong with {pct(CONFIDENT, 0)}+ confidence"
    return [f"Labels to review ({what}): {shown}."]


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
        items += _labels_to_review(ev)
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
        (
            inputs.src(inputs.run.path, "metrics.json"),
            inputs.src(inputs.run.path, "predictions.csv"),
        ),
    )


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
        return Slide("sizing", title, missing_block(cap.what, cap.why, cap.command), "", ())
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
