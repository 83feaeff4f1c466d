"""`oiforge stats` on the mirror sample: the statistics find the confirmation rates, precision
and frequencies the sample generator planted (sample.json), and the charts are real PNGs."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from oiforge.catalog import Catalog, open_catalog
from oiforge.cli import app
from oiforge.contracts import SPLITS
from oiforge.endpoints import Endpoints
from oiforge.errors import InvalidInputError
from oiforge.stats import LabelStats, compute_stats, label_frequency, write_stats
from oiforge.stats.binning import DEFAULT_THRESHOLDS as THRESHOLDS
from oiforge.stats.binning import recommend, threshold_pct

DOG, CAT, BANANA = "/m/0bt9lr", "/m/01yrx", "/m/09qck"
FILE_SPLIT = {"train": "train", "validation": "val", "test": "test"}


@pytest.fixture(scope="module")
def planted(sample_root: Path) -> dict[str, Any]:
    facts = json.loads((sample_root / "sample.json").read_text(encoding="utf-8"))
    rates: dict[str, Any] = facts["machine_label_confirmation"]["rates"]
    return rates


@pytest.fixture(scope="module")
def cat(mirror: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    home = tmp_path_factory.mktemp("stats-home")
    with open_catalog("v7", Endpoints.for_mirror(mirror.url), home=home) as opened:
        yield opened


@pytest.fixture(scope="module")
def by_split(cat: Catalog) -> dict[str, LabelStats]:
    return {split: compute_stats(cat, split) for split in ("all", "train")}


def _rows(table: Any) -> dict[str, dict[str, Any]]:
    return {r["label_mid"]: r for r in table.to_pylist()}


def _cells(planted: dict[str, Any], mid: str, split: str, pct_at_least: int = 0) -> tuple[int, int]:
    cells = [
        c for c in planted[mid]["cells"]
        if split in ("all", c[0]) and round(float(c[1]) * 100) >= pct_at_least
    ]  # fmt: skip
    return sum(c[2] for c in cells), sum(c[3] for c in cells)


def test_fixed_targets_are_planted(planted: dict[str, Any]) -> None:
    for mid, target in ((DOG, 0.9), (CAT, 0.6), (BANANA, 0.3)):
        entry = planted[mid]
        assert entry["target"] == target
        # the rejected count is rounded to a whole label: the rate is off by < 1 label's share
        assert abs(entry["rate"] - target) < 1 / (entry["confirmed"] + entry["rejected"])


def test_confirmation_over_all_splits_is_exactly_the_planted_rate(
    by_split: dict[str, LabelStats], planted: dict[str, Any]
) -> None:
    rows = _rows(by_split["all"].confirmation)
    for mid, entry in planted.items():
        assert (rows[mid]["confirmed"], rows[mid]["rejected"]) == (
            entry["confirmed"],
            entry["rejected"],
        ), mid
        assert rows[mid]["share"] == pytest.approx(entry["rate"])
        assert rows[mid]["ci_low"] <= entry["rate"] <= rows[mid]["ci_high"]


def test_confirmation_in_train_is_the_planted_rate_within_sampling_error(
    by_split: dict[str, LabelStats], planted: dict[str, Any]
) -> None:
    """Train holds a random subset of each class's verified labels, so its share is a
    hypergeometric draw around the planted rate: it must lie within 4 standard errors."""
    rows = _rows(by_split["train"].confirmation)
    for mid, entry in planted.items():
        row = rows[mid]
        assert (row["confirmed"], row["rejected"]) == _cells(planted, mid, "train"), mid
        big, n = entry["confirmed"] + entry["rejected"], row["verified"]
        p = entry["rate"]
        se = math.sqrt(p * (1 - p) / n * (big - n) / max(big - 1, 1))
        assert abs(row["share"] - p) <= 4 * se + 1e-9, mid


def test_precision_at_thresholds_matches_the_planted_cells(
    by_split: dict[str, LabelStats], planted: dict[str, Any]
) -> None:
    for split, stats in by_split.items():
        for row in stats.precision.to_pylist():
            if row["label_mid"] not in planted:
                assert row["verified"] == 0  # context labels are never verified
                continue
            pct = threshold_pct(row["threshold"])
            confirmed, rejected = _cells(planted, row["label_mid"], split, pct)
            assert (row["confirmed"], row["verified"]) == (confirmed, confirmed + rejected)
            if row["verified"]:
                assert row["precision"] == pytest.approx(confirmed / (confirmed + rejected))


def test_confirmation_by_confidence_pools_the_planted_cells(
    by_split: dict[str, LabelStats], planted: dict[str, Any]
) -> None:
    want: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for entry in planted.values():
        for split, conf, confirmed, rejected in entry["cells"]:
            if split == "train":
                k = min(round(float(conf) * 100) // 10, 9)
                want[k][0] += confirmed
                want[k][1] += confirmed + rejected
    for k, row in enumerate(by_split["train"].by_confidence.to_pylist()):
        assert [row["confirmed"], row["verified"]] == want[k], row["bin"]


def _csv_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))[1:]


def test_frequency_matches_counts_from_the_files(
    by_split: dict[str, LabelStats], sample_root: Path, planted: dict[str, Any]
) -> None:
    images: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    machine: dict[str, int] = defaultdict(int)
    meta = sample_root / "openimages/v7"
    for split in SPLITS:
        name = f"oidv7-{FILE_SPLIT[split]}-annotations-human-imagelabels.csv"
        for image_id, _, mid, confidence in _csv_rows(meta / name):
            if confidence == "1":
                images[mid][split].add(image_id)
        if split == "train":
            name = "oidv7-train-annotations-machine-imagelabels.csv"
            for row in _csv_rows(meta / name):
                machine[row[2]] += 1
    rows = _rows(by_split["train"].frequency)
    assert set(rows) == set(images) | set(machine)
    for mid, row in rows.items():
        assert row["images"] == len(images[mid]["train"]), mid
        assert row["images_all_splits"] == sum(len(s) for s in images[mid].values()), mid
        assert row["machine_labels"] == machine[mid], mid
    for mid, entry in planted.items():  # the frequencies the generator says it planted
        assert rows[mid]["images"] == entry["positives"]["train"]
    ranked = by_split["train"].frequency.column("images").to_pylist()
    assert ranked == sorted(ranked, reverse=True)


def _assert_png(path: Path) -> None:
    assert path.stat().st_size > 5_000
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 300 and im.height > 200
        assert len(im.convert("L").getcolors(maxcolors=1 << 16) or range(99)) > 5


@pytest.mark.slow
def test_cli_writes_tables_charts_and_advice(
    mirror: Any, tmp_path: Path, planted: dict[str, Any]
) -> None:
    out = tmp_path / "stats"
    args = ["stats", "--split", "train", "--out", str(out), "--classes", "Man,Banana",
            "--target-precision", "0.8", "--metadata-base", f"{mirror.url}/openimages"]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for name, mid in (("Man", "/m/04yx4"), ("Banana", BANANA)):  # advice from planted counts
        cells = [(t, *_cells(planted, mid, "train", threshold_pct(t))) for t in THRESHOLDS]
        found = recommend([(t, k, k + r) for t, k, r in cells], 0.8)
        want = f"--min-confidence {found[0]:g} (" if found else "no threshold reaches 0.80"
        assert f"{name}: {want}" in result.output
    for name in ("label_frequency", "confirmation_vs_frequency", "confirmation_vs_confidence",
                 "precision_at_thresholds"):  # fmt: skip
        _assert_png(out / f"{name}.png")
    summary = json.loads((out / "stats.json").read_text())
    assert summary["split"] == "train" and summary["verified"] > 0
    assert (
        len(_csv_rows(out / "machine_precision.csv")) == 5 * summary["labels_with_machine_labels"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--split", "training"], "unknown split"),
        (["--thresholds", "0.5,1.5"], "within [0, 1]"),
        (["--thresholds", "0.555"], "steps of 0.01"),
        (["--thresholds", "high"], "--thresholds wants numbers"),
        (["--classes", "Catt"], "unknown class"),
    ],
)
def test_cli_refuses_bad_input(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["stats", "--no-fetch", "--out", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_python_api_writes_the_same_numbers(
    by_split: dict[str, LabelStats], tmp_path: Path
) -> None:
    stats = by_split["train"]
    files = write_stats(stats, tmp_path, with_charts=False)
    assert files.charts == ()
    with pytest.raises(InvalidInputError, match="is a file"):
        write_stats(stats, tmp_path / "stats.json")
    text = (tmp_path / "machine_confirmation.csv").read_text(encoding="utf-8")
    confirmed = [int(r["confirmed"]) for r in csv.DictReader(io.StringIO(text))]
    assert confirmed == stats.confirmation.column("confirmed").to_pylist()
    frame = stats.precision.to_pandas()
    assert len(frame) == stats.precision.num_rows and "precision" in frame.columns


@pytest.mark.parametrize("split", ["train", "validation", "all"])
def test_frequency_from_ingest_sidecars_equals_the_query(cat: Catalog, split: str) -> None:
    from oiforge.stats import queries

    cat.ensure(["human_labels"])
    from_sidecars = queries.sidecar_positive_counts(cat, split)
    assert from_sidecars is not None
    assert from_sidecars.equals(queries.positive_counts(cat.connection, split))


def _write_labels(home: Path, rows: dict[str, list[str]]) -> None:
    """Header-only official label files of v7, plus ``rows[relpath]`` lines where given."""
    from oiforge.catalog.files import official_files

    for f in official_files("v7", ("human_labels", "machine_labels")):
        path = home / "metadata" / f.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["ImageID,Source,LabelName,Confidence", *rows.get(f.relpath, [])]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_hostile_values_are_counted_not_fatal(tmp_path: Path) -> None:
    a, b, c = "0000000000000001", "0000000000000002", "0000000000000003"
    _write_labels(tmp_path, {
        "v7/oidv7-train-annotations-machine-imagelabels.csv": [
            f"{a},machine,{CAT},1.5", f"{b},machine,{CAT},-0.2", f"{c},machine,{CAT},",
            f"{a},machine,{DOG},nan", f"{b},machine,{DOG},0.9", f"{c},machine,{DOG},0.7",
        ],
        "v7/oidv7-train-annotations-human-imagelabels.csv": [
            f"{a},verification,{CAT},1", f"{b},verification,{DOG},1",
            f"{b},crowdsource-verification,{DOG},1", f"{c},verification,{DOG},1",
            f"{c},verification,{DOG},0", f"{a},verification,{DOG},0.5",
        ],
    })  # fmt: skip
    with open_catalog("v7", home=tmp_path, fetch_missing=False) as opened:
        stats = compute_stats(opened, "train")
        for done in opened.ingested.values():  # without the ingest's counts: the SQL route
            if done.counts is not None:
                done.counts.unlink()
        assert label_frequency(opened, "train").equals(stats.frequency)
    assert stats.machine_labels == 6 and stats.invalid_confidence == 4
    rows = _rows(stats.confirmation)
    assert (rows[CAT]["confirmed"], rows[CAT]["rejected"]) == (1, 0)  # 1.5: verified, no bin
    # b: two verifications that agree count once; c: 1 and 0 conflict; a: 0.5 is no verdict
    assert (rows[DOG]["confirmed"], rows[DOG]["rejected"], rows[DOG]["conflicting"]) == (1, 0, 1)
    assert _rows(stats.frequency)[DOG]["images"] == 2
    files = write_stats(stats, tmp_path / "out")
    for png in files.charts:
        _assert_png(png)


@pytest.mark.slow
def test_empty_label_files_give_empty_tables_and_charts(tmp_path: Path) -> None:
    _write_labels(tmp_path, {})
    with open_catalog("v7", home=tmp_path, fetch_missing=False) as opened:
        stats = compute_stats(opened, "all")
    assert stats.confirmation.num_rows == 0 and stats.precision.num_rows == 0
    assert stats.summary()["share_confirmed"] is None
    files = write_stats(stats, tmp_path / "out")
    assert all(p.stat().st_size > 1000 for p in files.charts)


@pytest.mark.slow
def test_a_v1_v3_release_gives_the_same_planted_rates(
    mirror: Any, tmp_path: Path, planted: dict[str, Any]
) -> None:
    """v3 ships the same labels in the original release format (tarballs, one labels file)."""
    with open_catalog("v3", Endpoints.for_mirror(mirror.url), home=tmp_path) as v3:
        rows = _rows(compute_stats(v3, "all").confirmation)
    for mid, entry in planted.items():
        assert (rows[mid]["confirmed"], rows[mid]["rejected"]) == (
            entry["confirmed"],
            entry["rejected"],
        ), mid


def test_progress_reports_reach_100_and_change_nothing(
    cat: Catalog, by_split: dict[str, LabelStats]
) -> None:
    seen: list[float] = []
    stats = compute_stats(cat, "train", progress=seen.append)
    assert seen and seen[-1] == 100.0 and all(0 <= p <= 100 for p in seen)
    assert stats.confirmation.equals(by_split["train"].confirmation)
    assert stats.precision.equals(by_split["train"].precision)
    row = cat.connection.execute("SELECT current_setting('enable_progress_bar')").fetchall()
    assert row == [(False,)]  # the catalog's setting is restored


def test_label_frequency_shortcut_equals_the_full_computation(
    cat: Catalog, by_split: dict[str, LabelStats]
) -> None:
    for split in ("train", "all"):
        assert label_frequency(cat, split).equals(by_split[split].frequency)


def test_advice_for_a_class_without_machine_labels(by_split: dict[str, LabelStats]) -> None:
    airplane = "/m/0cmf2"  # not in the sample
    (advice,) = by_split["train"].recommend([airplane], target=0.5)
    assert advice.threshold is None and advice.rows == ()
    assert advice.text == f"{airplane}: no human-verified machine labels; use human labels only"
