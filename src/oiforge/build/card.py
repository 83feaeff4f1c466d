"""The dataset's human-readable files: ``DATASET.md``, the contact sheet and the attribution.

- ``DATASET.md``: the dataset card (classes, counts, filters, sources, licences, limitations).
- ``contact_sheet.html`` + one JPEG sprite per class for human review: every sample is its own
  tile, at its true aspect ratio, with its ImageID, sample key, split and review flags printed
  under it; flagged samples (grayscale, placeholder-like) come first, outlined and labelled.
  The pixels of a class's tiles are packed into one sprite (``review/<index>.jpg``) and each
  tile shows its part of it (CSS ``background-position``), so a sheet of 600 classes is 601
  files, not tens of thousands. The page uses the shared oiforge style (inlined) and fits a
  phone's width.
- ``attribution.json`` (per source image) and ``ATTRIBUTION.md``.
"""

from __future__ import annotations

import html
import io
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

from PIL import Image

from oiforge.atomic import write_text_atomic
from oiforge.build.assemble import Assembly, ExportSample
from oiforge.contracts import DATASET_SPLITS
from oiforge.contracts.dataset import ClassInfo
from oiforge.contracts.selection import ATTRIBUTION_COLUMNS
from oiforge.paths import package_data
from oiforge.spec import BuildSpec

LIMITATIONS = (
    "Labels come from Open Images annotations (human-verified image labels and boxes); some "
    "are wrong or incomplete, and absent labels do not mean absent objects.",
    "Class balance follows Open Images, which over-represents some regions, people and scenes.",
    "Images are Flickr photos listed as CC BY 2.0; licences can change or be wrong upstream. "
    "Check attribution.json before redistribution.",
    "Near-duplicates are found by a 64-bit perceptual hash; heavily edited copies can be missed "
    "and different photos of uniform scenes can be merged.",
    "Orientation: EXIF orientation is applied when present, otherwise the Open Images Rotation "
    "value; boxes are taken as relative to the upright image.",
    "A split that lacks a class has no folder for it: use classes.json for the label indices.",
)


@dataclass(frozen=True)
class CardInfo:
    """What the card needs beyond the assembly."""

    name: str
    version: str  # Open Images version, or "unknown"
    spec: BuildSpec
    selection_sha256: str
    labels: tuple[str, ...] = ()  # the "Labels" section: task, where negatives came from


def _class_table(asm: Assembly) -> list[str]:
    counts = Counter((s.cls.mid, s.split) for s in asm.samples)
    head = "| index | class | folder | MID | " + " | ".join(DATASET_SPLITS) + " |"
    lines = [head, "|" + "---|" * (4 + len(DATASET_SPLITS))]
    for c in asm.classes:
        per = " | ".join(str(counts[(c.mid, sp)]) for sp in DATASET_SPLITS)
        mid = f"`{c.mid}`" if c.mid else "none (added negatives)"
        lines.append(f"| {c.index} | {_cell(c.name)} | `{c.folder}` | {mid} | {per} |")
    totals = Counter(s.split for s in asm.samples)
    lines.append("| | **total** | | | " + " | ".join(str(totals[s]) for s in DATASET_SPLITS) + " |")
    return lines


def negatives_words(made: Mapping[str, object], background: Mapping[str, int]) -> list[str]:
    """The card's plain-words account of where the negatives came from."""
    lines = []
    if made.get("multi_label") == "multi":
        down = " and expanded down the class hierarchy" if made.get("expand_up") else ""
        lines.append(
            "- Negatives of the selected photos: labels a person verified as *not* in the "
            f"photo (Open Images human-verified labels with Confidence 0){down}."
        )
    if background:
        kinds = {"verification": "humans verified as not showing the classes",
                 "random": "drawn at random among photos with no positive label of the "
                           "classes or their sub-classes (nobody checked them)"}  # fmt: skip
        for source, n in sorted(background.items()):
            lines.append(f"- {n} photos added as negatives: {kinds.get(source, source)}.")
    if made.get("min_confidence") is not None:
        lines.append(
            f"- Machine labels at confidence >= {made['min_confidence']} that no person "
            "verified are kept apart (`machine`), never counted as verified."
        )
    return lines or ["- No negatives: only the photos' verified positive labels."]


def _multi_class_table(asm: Assembly) -> list[str]:
    """Per class and split: photos with it verified present / verified absent / unknown."""
    known: Counter[tuple[str, str, str]] = Counter()
    for s in asm.samples:
        for kind in ("labels", "negatives"):
            for c in getattr(s.tags, kind, ()):
                known[(kind, c.mid, s.split)] += 1
    photos = Counter(s.split for s in asm.samples)
    head = "| index | class | MID | " + " | ".join(f"{sp} + / − / ?" for sp in DATASET_SPLITS)
    lines = [head + " |", "|" + "---|" * (3 + len(DATASET_SPLITS))]
    for c in asm.classes:
        cells = []
        for sp in DATASET_SPLITS:
            pos, neg = known[("labels", c.mid, sp)], known[("negatives", c.mid, sp)]
            cells.append(f"{pos} / {neg} / {photos[sp] - pos - neg}")
        lines.append(f"| {c.index} | {_cell(c.name)} | `{c.mid}` | {' | '.join(cells)} |")
    lines.append("| | **photos** | | " + " | ".join(str(photos[s]) for s in DATASET_SPLITS) + " |")
    return [*lines, "", "`+` verified present, `−` verified absent, `?` unknown (nobody "
            "checked; machine labels count as unknown)."]  # fmt: skip


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")


def _exclusions(asm: Assembly) -> list[str]:
    reasons = Counter(e.reason.split(":", 1)[0] for e in asm.excluded)
    if not reasons:
        return ["Nothing was excluded."]
    lines = ["| reason | samples |", "|---|---|"]
    lines += [f"| {_cell(r)} | {n} |" for r, n in sorted(reasons.items())]
    return [*lines, "", "Every excluded sample is listed with its reason in `excluded.parquet`."]


def write_card(root: Path, asm: Assembly, info: CardInfo, formats: list[str]) -> None:
    """Write ``DATASET.md``."""
    images = len({s.record.image_id for s in asm.samples})
    flagged = Counter(f for s in asm.samples for f in s.record.flags)
    spec_json = json.dumps(info.spec.model_dump(mode="json"), indent=2, sort_keys=True)
    lines = [
        f"# {_cell(info.name)}",
        "",
        f"{len(asm.samples)} samples of {len(asm.classes)} classes from {images} Open Images "
        f"photos (Open Images version: {info.version}). Formats: {', '.join(formats)}.",
        "",
        *(["## Labels", "", *info.labels, ""] if info.labels else []),
        "## Classes",
        "",
        *(_multi_class_table(asm) if info.spec.task == "multilabel" else _class_table(asm)),
        "",
        "## Filters and exclusions",
        "",
        *_exclusions(asm),
        "",
        "Review flags on exported samples (kept, see `contact_sheet.html`): "
        + (", ".join(f"{k}: {v}" for k, v in sorted(flagged.items())) or "none")
        + ".",
        "",
        "Build options:",
        "",
        "```json",
        spec_json,
        "```",
        "",
        "## Sources",
        "",
        "- Images and annotations: Open Images Dataset (https://storage.googleapis.com/openimages/web/index.html).",
        f"- Selection file sha256: `{info.selection_sha256}`.",
        "- Per-sample provenance (ImageID, box, crop, source sha256, URLs): `manifest.parquet`.",
        "",
        "## Licences",
        "",
        "- Annotations: CC BY 4.0 (Google LLC).",
        "- Images: listed by Open Images as CC BY 2.0; each photo's licence, author and page "
        "are in `attribution.json` and `ATTRIBUTION.md`.",
        "",
        "## Known limitations",
        "",
        *[f"- {x}" for x in LIMITATIONS],
        "",
        "## Reproduce",
        "",
        "`oiforge build --lock oiforge.lock ...` rebuilds these files byte for byte; "
        "`oiforge verify DIR` checks them against the lock.",
        "",
    ]
    write_text_atomic(root / "DATASET.md", "\n".join(lines))


TILE: Final = 128
COLUMNS: Final = 8
MAX_TILES: Final = 64

_STYLE: Final = """
.toc{columns:14rem;padding-left:1.2rem}.toc li{break-inside:avoid}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:.4rem 0 1.6rem}
.tile{margin:0;background:var(--panel);border:2px solid var(--line);border-radius:var(--radius);
padding:6px;width:calc(128px + 16px);font-size:11.5px;min-width:0}
.tile.flagged{border-color:var(--bad);background:var(--bad-soft)}
.thumb{margin:0 auto 4px;background-repeat:no-repeat;border-radius:3px}
.tile code{display:block;font-size:11px;overflow-wrap:anywhere}
.tile .key{color:var(--muted);overflow-wrap:anywhere}
h2 small{font-weight:normal;color:var(--muted)}
"""


@dataclass(frozen=True)
class Placed:
    """Where a sample's thumbnail sits in its class sprite."""

    sample: ExportSample
    x: int
    y: int
    width: int
    height: int


def _pick(items: list[ExportSample]) -> list[ExportSample]:
    return sorted(items, key=lambda s: (not s.record.flags,))[:MAX_TILES]


def _sprite(items: list[ExportSample], source: Callable[[str], Path]) -> tuple[bytes, list[Placed]]:
    """The class's JPEG sprite and where each thumbnail is in it."""
    rows = (len(items) + COLUMNS - 1) // COLUMNS
    sheet = Image.new("RGB", (COLUMNS * TILE, max(rows, 1) * TILE), (255, 255, 255))
    placed = []
    for n, s in enumerate(items):
        with Image.open(source(s.key)) as im:
            im.draft("RGB", (TILE, TILE))
            tile = im.convert("RGB")
            tile.thumbnail((TILE, TILE), Image.Resampling.BILINEAR)
        x, y = (n % COLUMNS) * TILE, (n // COLUMNS) * TILE
        sheet.paste(tile, (x, y))
        placed.append(Placed(s, x, y, tile.width, tile.height))
    buf = io.BytesIO()
    sheet.save(buf, "JPEG", quality=85)
    return buf.getvalue(), placed


def _tile(c: ClassInfo, p: Placed) -> str:
    e, s = html.escape, p.sample
    flags = "".join(f' <span class="chip bad">{e(f)}</span>' for f in s.record.flags)
    style = (
        f"width:{p.width}px;height:{p.height}px;"
        f"background-image:url(review/{c.index:04d}.jpg);background-position:-{p.x}px -{p.y}px"
    )
    return (
        f'<figure class="tile{" flagged" if s.record.flags else ""}">'
        f'<div class="thumb" role="img" aria-label="{e(s.key)}" style="{style}"></div>'
        f"<figcaption><code>{e(s.record.image_id)}</code>"
        f'<span class="key">{e(s.key)} · {e(s.split)}</span>{flags}</figcaption></figure>'
    )


def _section(c: ClassInfo, placed: list[Placed], total: int) -> str:
    e = html.escape
    flagged = sum(1 for p in placed if p.sample.record.flags)
    shown = f"first {len(placed)} of {total}" if len(placed) < total else f"{total}"
    note = f", {flagged} flagged" if flagged else ""
    return (
        f'<h2 id="c{c.index}">{c.index}. {e(c.name)} <small><code>{e(c.mid)}</code> · '
        f"{shown} samples{note}</small></h2>"
        f'<div class="tiles">{"".join(_tile(c, p) for p in placed)}</div>'
    )


def _write_sprite(
    path: Path, items: list[ExportSample], source: Callable[[str], Path]
) -> list[Placed]:
    """One class's sprite. A plain write: it lands in the build's staging directory, which is
    synced once and renamed into place whole (an fsync per class would cost more than the file).
    """
    data, placed = _sprite(items, source)
    path.write_bytes(data)
    return placed


@cache
def _style() -> str:
    return package_data("web", "oiforge.css").read_text(encoding="utf-8") + _STYLE


def _page(classes: list[ClassInfo], sections: list[str], flagged: dict[int, int]) -> str:
    e = html.escape
    chip = '<span class="chip bad">{} flagged</span>'
    marks = {i: " " + chip.format(n) if n else "" for i, n in flagged.items()}
    toc = "".join(
        f'<li><a href="#c{c.index}">{e(c.name)}</a>{marks[c.index]}</li>' for c in classes
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Contact sheet</title><style>{_style()}</style></head><body>"
        '<main class="page"><h1>Contact sheet</h1><p>Every class\'s samples, flagged ones '
        "first (outlined in red). To leave one out, add its line "
        "(<code>ImageID[,box],reason</code>) to an exclude list and rebuild, or curate in "
        "<code>oiforge browse</code>.</p>"
        f'<ul class="toc">{toc}</ul>' + "\n".join(sections) + "</main></body></html>\n"
    )


def write_contact_sheet(
    root: Path,
    classes: list[ClassInfo],
    samples: list[ExportSample],
    source: Callable[[str], Path],
) -> None:
    """Write ``review/<index>.jpg`` per class and ``contact_sheet.html``.

    Classes are drawn on threads (Pillow's decode, resize and JPEG encode release the GIL).
    """
    by_mid: dict[str, list[ExportSample]] = defaultdict(list)
    for s in samples:
        by_mid[s.cls.mid].append(s)
    (root / "review").mkdir(parents=True, exist_ok=True)
    picked = {c.mid: _pick(by_mid[c.mid]) for c in classes}
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        jobs = [
            pool.submit(
                _write_sprite, root / "review" / f"{c.index:04d}.jpg", picked[c.mid], source
            )
            for c in classes
        ]
        placed = [job.result() for job in jobs]
    sections = [_section(c, p, len(by_mid[c.mid])) for c, p in zip(classes, placed, strict=True)]
    flagged = {c.index: sum(1 for s in by_mid[c.mid] if s.record.flags) for c in classes}
    write_text_atomic(root / "contact_sheet.html", _page(classes, sections, flagged))


def _by_image(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    images: dict[str, dict[str, Any]] = {}
    samples: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        samples[r["image_id"]].append(r["sample_path"])
        images.setdefault(
            r["image_id"],
            {
                "image_id": r["image_id"],
                **{k: r[k] for k in ATTRIBUTION_COLUMNS},
            },
        )
    return [{**images[i], "samples": samples[i]} for i in sorted(images)]


def write_attribution(root: Path, rows: list[dict[str, Any]]) -> None:
    """``attribution.json`` (per source image) and the human-readable ``ATTRIBUTION.md``."""
    images = _by_image(rows)
    doc: dict[str, Any] = {
        "annotations_license": "CC BY 4.0 (Open Images annotations, Google LLC)",
        "images_license_note": "Images are listed by Open Images as CC BY 2.0; check each "
        "image's own licence below before reuse.",
        "images": images,
    }
    write_text_atomic(
        root / "attribution.json", json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    )
    lines = [
        "# Attribution",
        "",
        doc["images_license_note"],
        "",
        "Annotations: " + doc["annotations_license"],
        "",
    ]
    by_licence: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for img in images:
        by_licence[img["license"] or "(licence not given)"].append(img)
    for licence in sorted(by_licence):
        lines += [f"## {licence}", ""]
        for img in by_licence[licence]:
            title = _md(img["title"]) or img["image_id"]
            author = _md(img["author"]) or "unknown author"
            link = f" — <{img['landing_url']}>" if _is_plain_url(img["landing_url"]) else ""
            lines.append(f"- “{title}” by {author} ({img['image_id']}){link}")
        lines.append("")
    write_text_atomic(root / "ATTRIBUTION.md", "\n".join(lines))


def _is_plain_url(url: str) -> bool:
    """An http(s) URL that cannot break out of Markdown's ``<...>`` autolink."""
    return url.startswith(("https://", "http://")) and not any(c in url for c in " <>\n\t`")


def _md(text: str) -> str:
    """Text from the metadata, made inert in Markdown (no links, tags or line breaks)."""
    out = " ".join(str(text).split())
    out = out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]#|":
        out = out.replace(ch, "\\" + ch)
    return out
