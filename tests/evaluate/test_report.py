"""`evaluate` end to end on a tiny trained run: files exist, parse, and are self-contained."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oiforge.evaluate import evaluate
from oiforge.train import build_config, train
from train.synthetic import make_dataset  # tests/ is on sys.path (rootdir-relative packages)


@pytest.fixture(scope="module")
def run_with_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("eval")
    ds = make_dataset(base / "ds", per_class={"train": 10, "val": 4, "test": 8}, seed=3)
    files = sorted((ds / "test").rglob("*.jpg"))
    table = pa.table({
        "image_id": [f.stem for f in files],
        "path": [str(f.relative_to(ds)) for f in files],
        "author": [f"Author {i}" for i in range(len(files))],
        "license": ["https://creativecommons.org/licenses/by/2.0/"] * len(files),
        "landing_url": [f"https://www.flickr.com/photos/x/{i}" for i in range(len(files))],
        "title": ["<script>alert(1)</script>"] * len(files),
    })  # fmt: skip
    pq.write_table(table, ds / "manifest.parquet")
    out = base / "run"
    train(build_config(dataset=str(ds), out=str(out), image_size=32, epochs=2, workers=0))
    return out


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.srcs += [v or "" for k, v in attrs if k in ("src", "href") and tag != "a"]


@pytest.mark.slow
def test_evaluate_writes_metrics_plots_and_a_self_contained_report(run_with_manifest: Path) -> None:
    summary = evaluate(run_with_manifest, workers=0)
    run = run_with_manifest
    assert summary["split"] == "test" and summary["samples"] == 24
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"accuracy", "top_k", "per_class", "macro", "weighted", "confusion", "ece"} <= set(
        metrics
    )
    assert sum(c["support"] for c in metrics["per_class"]) == 24
    for png in ("confusion.png", "pr_curves.png", "reliability.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"
    html = (run / "report.html").read_text()
    parser = _Collector()
    parser.feed(html)
    assert parser.srcs and all(s.startswith("data:image/") for s in parser.srcs)
    assert "<script>" not in html  # titles from the manifest are escaped
    assert "Candidates (--mode auto)" in html and "(chosen)" in html  # the default mode
    if metrics["worst_mistakes"]:
        assert metrics["worst_mistakes"][0]["attribution"]["author"].startswith("Author")
        assert re.search(r"by Author \d+", html)


@pytest.mark.slow
def test_evaluate_without_a_test_split_uses_val_and_says_so(tmp_path: Path) -> None:
    from oiforge.evaluate import run_evaluation
    from oiforge.progress import Notice

    ds = make_dataset(tmp_path / "ds", per_class={"train": 8, "val": 3}, seed=5)
    train(
        build_config(
            dataset=str(ds), out=str(tmp_path / "r"), mode="probe", image_size=32, epochs=1,
            workers=0,
        )
    )  # fmt: skip
    events = list(run_evaluation(tmp_path / "r", workers=0))
    assert any(isinstance(e, Notice) and "no test split" in e.text for e in events)
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["split"] == "val"
