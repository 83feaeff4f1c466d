"""``MODEL.md``: the model card written next to an exported model."""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oiforge.serve.labels import Labels

MAX_LISTED_CLASSES = 50


@dataclass(frozen=True)
class RunFacts:
    """What a run dir tells about the model: its config and its best metrics row."""

    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    source: str = "(not recorded)"


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _best_metrics(path: Path) -> dict[str, str]:
    """The metrics.csv row with the best validation accuracy (else the last row)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}
    if not rows:
        return {}
    key = next((k for k in ("val_acc", "val_top1", "val_accuracy") if k in rows[0]), None)

    def score(row: dict[str, str]) -> float:
        try:
            return float(row.get(key or "", "") or "nan")
        except ValueError:
            return float("-inf")

    best = max(rows, key=score) if key else rows[-1]
    return {k: v for k, v in best.items() if k and v not in (None, "")}


def run_facts(run_dir: Path) -> RunFacts:
    return RunFacts(
        config=_read_config(run_dir / "config.yaml"),
        metrics=_best_metrics(run_dir / "metrics.csv"),
        source=str(run_dir.resolve()),
    )


def _config_lines(config: dict[str, Any]) -> list[str]:
    lines = [f"- `{k}`: {v}" for k, v in config.items() if not isinstance(v, dict | list)]
    return lines or ["- (no config.yaml in the run dir)"]


def _class_lines(labels: Labels) -> list[str]:
    shown = labels.classes[:MAX_LISTED_CLASSES]
    lines = [f"| {c.index} | {c.name} | `{c.mid}` |" for c in shown]
    if len(labels.classes) > len(shown):
        lines.append(f"| … | {len(labels.classes) - len(shown)} more in labels.json | |")
    return ["| index | name | MID |", "|---|---|---|", *lines]


def render_card(labels: Labels, facts: RunFacts, parity: float) -> str:
    pre = labels.preprocessing
    metrics = [f"- {k}: {v}" for k, v in facts.metrics.items()] or ["- (no metrics.csv)"]
    today = dt.datetime.now(dt.UTC).date().isoformat()
    parts = [
        f"# Model card: {labels.model.name}",
        "",
        f"Version `{labels.model.version}` (first 12 hex of the SHA-256 of model.onnx), "
        f"architecture `{labels.model.architecture}`, exported {today} from `{facts.source}`.",
        "",
        "## Files",
        "- `model.onnx`: input `input` float32 (N, 3, "
        f"{pre.size}, {pre.size}), output `logits` (N, {len(labels.classes)}); dynamic N.",
        "- `labels.json`: classes (index, name, Open Images MID) and preprocessing.",
        f"- ONNX Runtime vs torch parity on random inputs: max |logit diff| = {parity:.2e}.",
        f"- Test-time augmentation inside the graph: {labels.model.tta}"
        + (
            " (output: log of the views' mean probabilities)."
            if labels.model.tta != "none"
            else "."
        ),
        "",
        "## Preprocessing",
        f"RGB (EXIF orientation applied), shorter side resized to {pre.scale_size} (bilinear), "
        f"centre crop {pre.size}×{pre.size}, scaled to 0..1, normalised with mean "
        f"{list(pre.mean)} and std {list(pre.std)}.",
        "",
        "## Training data and configuration",
        "Images from Google's Open Images dataset, selected and split by oiforge "
        "(see the dataset's DATASET.md and oiforge.lock for the exact samples).",
        *_config_lines(facts.config),
        "",
        "## Metrics (best validation epoch)",
        *metrics,
        "",
        f"## Classes ({len(labels.classes)})",
        *_class_lines(labels),
        "",
        *_LIMITS,
    ]
    return "\n".join(parts) + "\n"


_LIMITS = [
    "## Intended use",
    "Single-label classification of everyday photos into the classes above, for prototypes, "
    "search and sorting, and teaching. Every prediction is a guess with a probability; "
    "show the top-k, not only the top-1.",
    "",
    "## Limits",
    "- It only knows the classes above; any other photo still gets one of them.",
    "- Open Images labels are partly machine-generated and verified by people; some are "
    "wrong or missing, and Flickr photos over-represent some places, people and objects.",
    "- Not for decisions about people (identity, health, employment, law enforcement).",
    "- Accuracy was measured on a held-out split of the same data; expect less on "
    "photos unlike Flickr's.",
    "",
    "## Licences",
    "- Open Images annotations: CC BY 4.0 (Google LLC). The images are Flickr photos under "
    "CC BY 2.0 and others; attribution per image is in the dataset's attribution.json.",
    "- Pretrained backbone weights (if used) keep their own licence (EfficientNet-Lite: "
    "Apache-2.0). oiforge itself: Apache-2.0.",
]
