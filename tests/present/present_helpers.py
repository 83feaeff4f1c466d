"""Read a deck's facts back from its HTML, and the same values straight from the artefacts.

The artefact side is written independently of ``oiforge.present.facts`` (json, csv, yaml,
pyarrow, sqlite3 directly), so a reader bug there cannot hide in both.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml
from typer.testing import CliRunner, Result

ENV = {"COLUMNS": "200", "TERM": "dumb"}


def invoke(*args: object) -> Result:
    from oiforge.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def cli(*args: object) -> str:
    """Run an oiforge command in-process; it must succeed."""
    result = invoke(*args)
    assert result.exit_code == 0, f"{args}: {result.output}"
    return result.output


@dataclass(frozen=True)
class Fact:
    name: str
    key: str | None
    value: str
    text: str


class _FactParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.facts: list[Fact] = []
        self.figures: list[dict[str, str]] = []
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "span" and "data-fact" in found:
            self._open, self._text = found, []
        if tag == "figure" and "photo" in (found.get("class") or ""):
            self.figures.append({k: v or "" for k, v in found.items()})

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._open is not None:
            o = self._open
            self.facts.append(
                Fact(
                    str(o["data-fact"]),
                    o.get("data-key"),
                    str(o["data-value"]),
                    "".join(self._text),
                )
            )
            self._open = None


def parse_deck(html: str) -> tuple[list[Fact], list[dict[str, str]]]:
    parser = _FactParser()
    parser.feed(html)
    return parser.facts, parser.figures


class Artefacts:
    """The demo's files, read plainly."""

    def __init__(self, root: Path, run: str = "run") -> None:
        self.root = root
        self.run = root / run
        self.dataset = root / "dataset"

    def json(self, path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))

    @cached_property
    def metrics(self) -> dict[str, Any]:
        return dict(self.json(self.run / "metrics.json"))

    @cached_property
    def manifest(self) -> list[dict[str, Any]]:
        return list(pq.read_table(self.dataset / "manifest.parquet").to_pylist())

    @cached_property
    def selection(self) -> Any:
        return pq.read_table(self.root / "selection.parquet")

    @cached_property
    def journal(self) -> Counter[str]:
        db = sqlite3.connect(self.root / "store" / "journal.sqlite")
        try:
            return Counter(s for (s,) in db.execute("SELECT status FROM journal"))
        finally:
            db.close()

    @cached_property
    def epochs(self) -> dict[str, dict[str, str]]:
        with (self.run / "metrics.csv").open(newline="") as fh:
            return {r["epoch"]: r for r in csv.DictReader(fh)}

    def value(self, fact: Fact) -> Any:
        """The artefact value a fact claims, or ``None`` for a derived one."""
        kind, _, field = fact.name.partition(".")
        reader = getattr(self, f"_{kind}", None)
        return None if reader is None else reader(field, fact.key)

    def _metrics(self, field: str, key: str | None) -> Any:
        if field.startswith("per_class."):
            row = next(r for r in self.metrics["per_class"] if r["name"] == key)
            return row[field.split(".", 1)[1]]
        if field == "confusion":
            t, p = (int(x) for x in str(key).split(","))
            return self.metrics["confusion"][t][p]
        value: Any = self.metrics
        for part in field.split("."):
            value = value[part]
        return value

    def _labels(self, field: str, key: str | None) -> Any:
        return len(self.json(self.run / "labels.json")["classes"])

    def _config(self, field: str, key: str | None) -> Any:
        return yaml.safe_load((self.run / "config.yaml").read_text())[field]

    def _summary(self, field: str, key: str | None) -> Any:
        return self.json(self.run / "summary.json")[field]

    def _candidate(self, field: str, key: str | None) -> Any:
        rows = self.json(self.run / "summary.json")["candidates"]
        return next(r for r in rows if r["name"] == key)[field]

    def _metrics_csv(self, field: str, key: str | None) -> Any:
        return float(self.epochs[str(key)][field])

    def _manifest(self, field: str, key: str | None) -> Any:
        rows = self.manifest
        if field == "count":
            split, _, name = str(key).partition("/")
            return sum(1 for r in rows if r["split"] == split and r["class_name"] == name)
        if field == "split_count":
            return sum(1 for r in rows if r["split"] == key)
        if field == "license":
            return len({r["image_id"] for r in rows if r["license"] == key})
        if field == "flagged":
            return sum(1 for r in rows if r["flags"])
        return {"samples": len(rows), "images": len({r["image_id"] for r in rows})}[field]

    def _selection(self, field: str, key: str | None) -> Any:
        t = self.selection
        ids, names = t["image_id"].to_pylist(), t["label_name"].to_pylist()
        if field == "images_per_class":
            return len({i for i, n in zip(ids, names, strict=True) if n == key})
        if field == "source":
            return t["source"].to_pylist().count(key)
        if field == "version":
            return t.schema.metadata[b"oiforge.open_images_version"].decode()
        return {"images": len(set(ids)), "rows": t.num_rows}[field]

    def _predictions(self, field: str, key: str | None) -> Any:
        with (self.run / "predictions.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        wrong = [r for r in rows if r["true"] != r["predicted"]]
        if field == "wrong":
            return len(wrong)
        return sum(1 for r in wrong if float(r["confidence"]) >= 0.5)

    def _journal(self, field: str, key: str | None) -> Any:
        return self.journal[str(key)]

    def _stats(self, field: str, key: str | None) -> Any:
        return self.json(self.root / "store" / "stats.json")[field]

    def _excluded(self, field: str, key: str | None) -> Any:
        reasons = pq.read_table(self.dataset / "excluded.parquet")["reason"].to_pylist()
        return sum(1 for r in reasons if r.split(":", 1)[0] == key)

    def _curve(self, field: str, key: str | None) -> Any:
        points = self.json(self.run / "present" / "learning_curve.json")["points"]
        if field == "cost_s":
            return sum(p["seconds"] for p in points)
        if key == "1.0":
            full = {
                "score": self.metrics["accuracy"],
                "train_images": self._manifest("split_count", "train"),
            }
            return full[field]
        return next(p for p in points if str(p["fraction"]) == key)[field]

    def _estimate(self, field: str, key: str | None) -> Any:
        data = self.json(self.run / "present" / "estimate.json")
        if field == "img_s":
            return next(r for r in data["rows"] if r["name"] == key)["img_s"]
        return data[field]

    def _gpu(self, field: str, key: str | None) -> Any:
        from oiforge.paths import package_data

        return yaml.safe_load(package_data("train", "gpu_instances.yaml").read_text())[field]

    def _prices(self, field: str, key: str | None) -> Any:
        from oiforge.paths import package_data

        return yaml.safe_load(package_data("present", "prices.yaml").read_text())[field]


def same(claimed: str, actual: Any) -> bool:
    """A fact's ``data-value`` against the artefact's value (exact for numbers)."""
    if isinstance(actual, bool) or actual is None:
        return claimed == str(actual)
    if isinstance(actual, int | float):
        return float(claimed) == float(actual)
    return claimed == str(actual)
