"""Slides 2 and 3: the data: how it was selected, what was lost and why, the licences."""

from __future__ import annotations

from collections import Counter
from html import escape

from oiforge.present.facts import DatasetFacts, Missing
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
from oiforge.present.pictures import licence_name

MAX_ROWS = 12


SPLITS = ("train", "val", "test")


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
