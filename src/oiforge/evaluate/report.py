"""``report.html``: one self-contained page (plots and thumbnails inlined as base64), in the
shared oiforge style (``data/web/oiforge.css``, inlined)."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from functools import cache
from html import escape
from typing import Any

from oiforge.evaluate.gallery import Mistake
from oiforge.licences import licence_name
from oiforge.paths import package_data

STYLE = """
img.plot{max-width:100%;height:auto;border:1px solid var(--line);background:#fff}
.facts th{background:#eef1f5;width:1%;white-space:nowrap}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px}
figure{margin:0;font-size:12px;background:var(--panel);border:1px solid var(--line);
border-radius:var(--radius);padding:8px;min-width:0}
figure img{display:block;max-width:100%;max-height:170px;margin:0 auto 6px}
figcaption{overflow-wrap:anywhere}
"""


@cache
def page_style() -> str:
    """The shared stylesheet and this page's rules, for an inline ``<style>``."""
    return package_data("web", "oiforge.css").read_text(encoding="utf-8") + STYLE


def png_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="plot" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{_num(v)}</td>'
            if isinstance(v, int | float)
            else f"<td>{escape(str(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in rows
    )
    return f'<div class="table-wrap"><table><tr>{head}</tr>{body}</table></div>'


def _facts(facts: Mapping[str, Any]) -> str:
    """Key-value facts as a table of row headers (no empty header row)."""
    cells = [(escape(str(k)), _num(v)) for k, v in facts.items()]
    rows = "".join(f'<tr><th scope="row">{k}</th><td>{v}</td></tr>' for k, v in cells)
    return f'<div class="table-wrap"><table class="facts">{rows}</table></div>'


MULTILABEL_NOTE = (
    "<p>Multi-label, the Open Images way: every number counts only labels a person verified "
    "(present or absent). A class nobody checked in a photo is neither a hit nor a mistake. "
    "<b>AP</b> ranks the photos whose label for a class was verified by the model's "
    "probability and averages the precision at each correct photo; <b>mAP</b> is the mean "
    "over the classes with a verified positive. Each class is reported from its own "
    "threshold, chosen on the validation split.</p>"
)


def _summary(metrics: Mapping[str, Any]) -> str:
    if metrics.get("task") == "multilabel":
        return MULTILABEL_NOTE + _multilabel_summary(metrics)
    rows: list[list[Any]] = [["samples", metrics["samples"]], ["accuracy", metrics["accuracy"]]]
    rows += [[f"top-{k} accuracy", v] for k, v in metrics["top_k"].items() if k != "1"]
    for avg in ("macro", "weighted"):
        rows += [[f"{avg} {m}", metrics[avg][m]] for m in ("precision", "recall", "f1")]
    rows.append(["expected calibration error", metrics["ece"]])
    return _table(["metric", "value"], rows)


def _multilabel_summary(metrics: Mapping[str, Any]) -> str:
    verified = f"{metrics['verified_labels']} ({metrics['unknown_labels']} unknown: ignored)"
    rows: list[list[Any]] = [
        ["photos", metrics["samples"]],
        [f"mAP ({metrics['map_classes']} classes with a verified positive)", metrics["map"]],
        ["mAP 95% bootstrap interval", _interval(metrics.get("map_ci95"))],
        ["verified labels", verified],
        ["thresholds", metrics["threshold_rule"]],
    ]
    for avg in ("micro", "macro"):
        rows += [
            [f"{avg} {m} at the thresholds", metrics[avg][m]] for m in ("precision", "recall", "f1")
        ]
    expand = metrics.get("expand_up")
    if expand is not None:
        rows.append(["ground truth expanded up the hierarchy", "yes" if expand else "no"])
    return _table(["metric", "value"], rows)


def _interval(ci: Sequence[float] | None) -> str:
    return "n/a" if not ci else f"{ci[0]:.3f} – {ci[1]:.3f}"


def _per_class(metrics: Mapping[str, Any]) -> str:
    if metrics.get("task") == "multilabel":
        heads = ["class", "AP", "positives", "negatives", "threshold", "precision", "recall"]
        keys = ("support", "negatives", "threshold", "precision", "recall", "f1")
        rows = [
            [name, "n/a" if c["ap"] is None else c["ap"], *(c[k] for k in keys)]
            for name, c in metrics["per_class"].items()
        ]
        return _table([*heads, "F1"], rows)
    rows = [
        [c["name"], c["precision"], c["recall"], c["f1"], c["support"]]
        for c in metrics["per_class"]
    ]
    return _table(["class", "precision", "recall", "F1", "support"], rows)


def _attribution(info: Mapping[str, str]) -> str:
    if not info:
        return "<br><i>no attribution found</i>"
    link = info.get("landing_url") or info.get("original_url") or ""
    title = escape(info.get("title") or info.get("image_id") or "photo")
    title_html = f'<a href="{escape(link)}">{title}</a>' if link.startswith("http") else title
    author = escape(info.get("author") or "unknown author")
    url = info.get("license") or ""
    name = escape(licence_name(url))
    licence = f'<a href="{escape(url)}">{name}</a>' if url.startswith("http") else name
    return f"<br>{title_html} by {author}, {licence}"


def _gallery(mistakes: Sequence[Mistake]) -> str:
    if not mistakes:
        return "<p>No mistakes.</p>"
    figures = []
    for m in mistakes:
        img = (
            f'<img alt="" src="data:image/jpeg;base64,{m.thumbnail_b64}">'
            if m.thumbnail_b64
            else ""
        )
        if m.kind:  # multi-label: a verified label the model got wrong
            said = "said present" if m.kind == "false positive" else "said absent"
            what = (
                f"<b>{escape(m.true_name)}</b> (verified), model {said}: "
                f'<span class="bad">p = {m.confidence:.2f}</span>'
            )
        else:
            what = (
                f"<b>{escape(m.true_name)}</b> → "
                f'<span class="bad">{escape(m.predicted_name)}</span> ({m.confidence:.2f})'
            )
        figures.append(
            f"<figure>{img}<figcaption>{what}"
            f"<br><small>{escape(m.key)}</small>{_attribution(m.attribution)}</figcaption></figure>"
        )
    return f'<div class="gallery">{"".join(figures)}</div>'


def _mistakes(mistakes: Sequence[Mistake]) -> str:
    """The worst mistakes; multi-label: false positives and false negatives apart."""
    if not any(m.kind for m in mistakes):
        return f"<h2>Worst mistakes</h2>{_gallery(mistakes)}"
    parts = []
    for kind in ("false positive", "false negative"):
        some = [m for m in mistakes if m.kind == kind]
        parts.append(f"<h2>Worst {kind}s (verified labels)</h2>{_gallery(some)}")
    return "".join(parts)


def _candidates(rows: Sequence[Mapping[str, Any]]) -> str:
    """``--mode auto``: every candidate's validation score and time, the chosen one marked."""
    if not rows:
        return ""
    cols: tuple[str, ...] = ("name", "val_acc", "val_loss", "seconds", "epochs", "status")
    heads = ["candidate", "val accuracy", "val log-loss", "seconds", "epochs", "status"]
    better = "gets more validation images right than"
    if any("val_map" in r for r in rows):  # multi-label: mAP decides
        cols, heads = ("name", "val_map", *cols[1:]), ["candidate", "val mAP", *heads[1:]]
        better = "has a higher validation mAP than"
    body = [[r.get(c, "") if r.get(c) is not None else "" for c in cols] for r in rows]
    for row, r in zip(body, rows, strict=True):
        row[0] = f"{row[0]} (chosen)" if r.get("chosen") else row[0]
    note = (
        f"<p>Scores on the validation split; a costlier candidate is chosen only when it {better} "
        "the simpler one by more than one standard error of the paired difference."
    )
    if any(r.get("name") == "ensemble" for r in rows):
        judge = "mAP" if "val_map" in cols else "validation log-loss"
        note += (
            " The ensemble averages the finished candidates' probabilities; it is kept unless "
            f"that pick beats it by more than one standard error of the paired {judge}."
        )
    note += "</p>"
    return f"<h2>Candidates (--mode auto)</h2>{note}{_table(heads, body)}"


def render_report(
    title: str,
    facts: Mapping[str, Any],
    metrics: Mapping[str, Any],
    plots: Mapping[str, bytes],
    mistakes: Sequence[Mistake],
    candidates: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The whole HTML page."""
    facts_html = _facts(facts)
    plots_html = "".join(
        f"<h2>{escape(name)}</h2>{png_tag(png, name)}" for name, png in plots.items()
    )
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{page_style()}</style></head>"
        f"<body><main class='page'><h1>{escape(title)}</h1>{facts_html}"
        f"<h2>Summary</h2>{_summary(metrics)}{_candidates(candidates)}"
        f"<h2>Per class</h2>{_per_class(metrics)}{plots_html}"
        f"{_mistakes(mistakes)}</main></body></html>\n"
    )
