"""DATASET.md: the dataset card (classes, counts, filters, sources, licences, limitations)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from oiforge.atomic import write_text_atomic
from oiforge.build.assemble import Assembly
from oiforge.contracts import DATASET_SPLITS
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


def _class_table(asm: Assembly) -> list[str]:
    counts = Counter((s.cls.mid, s.split) for s in asm.samples)
    head = "| index | class | folder | MID | " + " | ".join(DATASET_SPLITS) + " |"
    lines = [head, "|" + "---|" * (4 + len(DATASET_SPLITS))]
    for c in asm.classes:
        per = " | ".join(str(counts[(c.mid, sp)]) for sp in DATASET_SPLITS)
        lines.append(f"| {c.index} | {_cell(c.name)} | `{c.folder}` | `{c.mid}` | {per} |")
    totals = Counter(s.split for s in asm.samples)
    lines.append("| | **total** | | | " + " | ".join(str(totals[s]) for s in DATASET_SPLITS) + " |")
    return lines


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
        "## Classes",
        "",
        *_class_table(asm),
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
