"""Every artefact the deck reads, each through one small reader.

This is the only module of ``present`` that opens another stage's files, so a reader can
switch to ``oiforge.contracts`` in one place. A missing file is a value (``Missing``: what,
why, and the exact command that makes it); a file that is there but does not parse is a
``MalformedFileError`` naming it.

    run/      config.yaml labels.json summary.json metrics.csv metrics.json predictions.csv
              model.onnx reliability.png
    dataset/  classes.json manifest.parquet excluded.parquet oiforge.lock
    selection.parquet (+ the spec YAML whose hash it carries)   store/journal.sqlite stats.json
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import tarfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oiforge.errors import MalformedFileError, OiforgeError, StageError

RUN_REQUIRED = ("config.yaml", "labels.json")
EPOCH_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")
MANIFEST_COLUMNS = (
    "sample_path",
    "key",
    "split",
    "class_name",
    "class_folder",
    "image_id",
    "wds_shard",
    "license",
    "author",
    "title",
    "landing_url",
    "flags",
    "parquet_file",
)


@dataclass(frozen=True)
class Missing:
    """An artefact the deck wanted and did not find: what, why, and how to make it."""

    what: str
    why: str
    command: str


@dataclass(frozen=True)
class RunFacts:
    path: Path
    config: dict[str, Any]
    classes: list[tuple[str, str]]  # (name, MID)
    task: str  # "single-label" or "multilabel"
    summary: dict[str, Any]
    epochs: list[dict[str, float]]
    onnx: Path | None
    plots: dict[str, Path]

    def training_time(self) -> tuple[float, str] | None:
        """The seconds training took and the summary.json key they are under: an auto run's
        every candidate (``auto_seconds``), else the run's (``train_seconds``)."""
        for key in ("auto_seconds", "train_seconds"):
            seconds = self.summary.get(key)
            if isinstance(seconds, int | float) and not isinstance(seconds, bool):
                return float(seconds), key
        return None


@dataclass(frozen=True)
class Prediction:
    key: str
    true: str
    predicted: str
    confidence: float


@dataclass(frozen=True)
class EvalFacts:
    metrics: dict[str, Any]
    predictions: list[Prediction]


@dataclass(frozen=True)
class SampleRow:
    """One exported sample of the manifest, with the attribution printed beside its photo."""

    image_id: str
    key: str
    split: str
    class_name: str
    class_folder: str
    sample_path: str
    wds_shard: str
    author: str
    title: str
    license: str
    landing_url: str
    flags: str
    parquet_file: str = ""


@dataclass(frozen=True)
class DatasetFacts:
    path: Path
    classes: list[str]
    counts: dict[tuple[str, str], int]  # (split, class) -> samples
    samples: list[SampleRow]
    excluded: Counter[str]  # reason -> samples
    lock: dict[str, Any]

    def count(self, split: str, name: str | None = None) -> int:
        return sum(n for (s, c), n in self.counts.items() if s == split and name in (None, c))


@dataclass(frozen=True)
class SelectionFacts:
    path: Path
    version: str
    spec_hash: str
    rows: int
    images: int
    images_per_class: dict[str, int]
    images_per_split: dict[str, int]
    sources: Counter[str]
    boxes: int
    min_confidence: float | None
    image_ids: frozenset[str]
    spec: dict[str, Any] | None = None  # the spec's select section, when its YAML was found
    spec_path: Path | None = None


@dataclass(frozen=True)
class DownloadFacts:
    store: Path
    statuses: Counter[str]
    errors: dict[str, list[tuple[str, str]]]  # status -> a few (image_id, error text)
    stats: dict[str, Any] = field(default_factory=dict)


# --- generic file readers -------------------------------------------------------------


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedFileError(str(path), f"not valid JSON ({exc})") from exc


def read_mapping(path: Path) -> dict[str, Any]:
    """A JSON or YAML file that must hold a mapping."""
    if path.suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise MalformedFileError(str(path), f"not valid YAML ({exc})") from exc
    else:
        data = read_json(path)
    if not isinstance(data, dict):
        raise MalformedFileError(str(path), "expected a mapping at the top")
    return data


def _floats(row: Mapping[str, str], path: Path, line: int) -> dict[str, float]:
    """The numbers of a metrics.csv row; a column the deck draws must hold one, others
    that are not numbers (a later version's text column) are left out."""
    out = {}
    for key, value in row.items():
        if not key or value in (None, ""):
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            if key in EPOCH_COLUMNS:
                raise MalformedFileError(
                    str(path), f"{key} is not a number: {value}", line
                ) from None
    return out


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise MalformedFileError(str(path), str(exc)) from exc


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# --- the run --------------------------------------------------------------------------


def read_run(run: Path) -> RunFacts:
    """The training run; a folder without config.yaml + labels.json is not one."""
    if not run.is_dir():
        raise StageError(f"no run folder {run} (train one: `oiforge train DATASET --out {run}`)")
    for name in RUN_REQUIRED:
        if not (run / name).is_file():
            raise StageError(f"{run} is not a training run: no {name} (run `oiforge train`)")
    config = read_mapping(run / "config.yaml")
    labels = read_mapping(run / "labels.json")
    try:
        rows = sorted(labels["classes"], key=lambda c: int(c["index"]))
        classes = [(str(c["name"]), str(c.get("mid") or "")) for c in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedFileError(str(run / "labels.json"), f"bad classes list ({exc})") from exc
    summary = read_mapping(run / "summary.json") if (run / "summary.json").is_file() else {}
    epochs = read_epochs(run / "metrics.csv")
    plots = {p: run / p for p in ("reliability.png", "confusion.png", "curves.png")}
    return RunFacts(
        path=run,
        config=config,
        classes=classes,
        task=task_of(labels),
        summary=summary,
        epochs=epochs,
        onnx=run / "model.onnx" if (run / "model.onnx").is_file() else None,
        plots={k: v for k, v in plots.items() if v.is_file()},
    )


def task_of(labels: Mapping[str, Any]) -> str:
    task = str(labels.get("task") or "single-label").replace("_", "-").lower()
    return "multilabel" if task in ("multilabel", "multi-label") else "single-label"


def read_epochs(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    return [_floats(r, path, i + 2) for i, r in enumerate(read_csv_rows(path))]


def read_evaluation(run: Path) -> EvalFacts | Missing:
    path = run / "metrics.json"
    if not path.is_file():
        return Missing("metrics.json", "the run was not evaluated", f"oiforge evaluate {run}")
    metrics = read_mapping(path)
    if not any(k in metrics for k in ("accuracy", "map")):
        raise MalformedFileError(str(path), "neither `accuracy` nor `map` in it")
    return EvalFacts(metrics, read_predictions(run / "predictions.csv"))


def read_predictions(path: Path) -> list[Prediction]:
    if not path.is_file():
        return []
    out = []
    for i, row in enumerate(read_csv_rows(path)):
        try:
            out.append(
                Prediction(row["key"], row["true"], row["predicted"], float(row["confidence"]))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedFileError(str(path), f"bad row ({exc})", i + 2) from exc
    return out


# --- the dataset ----------------------------------------------------------------------


def dataset_of(run: RunFacts, given: Path | None) -> Path | Missing:
    """The dataset folder: ``--dataset``, else the one config.yaml names."""
    named = str(run.config.get("dataset") or "")
    path = given or (Path(named) if named else None)
    if path is not None and path.is_dir():
        return path
    why = f"no dataset folder at {path}" if path is not None else "config.yaml names no dataset"
    return Missing("dataset folder", why, f"oiforge present {run.path} --dataset DATASET_DIR")


def read_dataset(root: Path) -> DatasetFacts | Missing:
    """The dataset's manifest, classes, exclusions and lock; a folder that `oiforge build`
    did not make (no manifest.parquet) is missing them."""
    if not (root / "manifest.parquet").is_file():
        return Missing(
            "manifest.parquet",
            f"{root} has no manifest.parquet (it was not made by `oiforge build`)",
            f"oiforge build --selection SELECTION.parquet --store STORE --out {root}",
        )
    samples = read_manifest(root / "manifest.parquet")
    counts = Counter((s.split, s.class_name) for s in samples)
    classes = _dataset_classes(root, samples)
    lock = read_mapping(root / "oiforge.lock") if (root / "oiforge.lock").is_file() else {}
    return DatasetFacts(root, classes, dict(counts), samples, read_excluded(root), lock)


def _dataset_classes(root: Path, samples: list[SampleRow]) -> list[str]:
    path = root / "classes.json"
    if not path.is_file():
        return sorted({s.class_name for s in samples})
    rows = read_json(path)
    try:
        return [str(r["name"]) for r in sorted(rows, key=lambda r: int(r["index"]))]
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedFileError(str(path), f"expected [{{index, name}}] ({exc})") from exc


def _parquet(path: Path, columns: Iterable[str] | None = None) -> Any:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        wanted = None if columns is None else [c for c in columns if c in schema.names]
        return pq.read_table(path, columns=wanted)
    except (OSError, ValueError) as exc:
        raise MalformedFileError(str(path), f"not a readable Parquet file ({exc})") from exc


def read_manifest(path: Path) -> list[SampleRow]:
    table = _parquet(path, MANIFEST_COLUMNS)
    for needed in ("split", "class_name", "image_id"):
        if needed not in table.column_names:
            raise MalformedFileError(str(path), f"no `{needed}` column")
    columns = {c: table.column(c).to_pylist() for c in table.column_names}
    empty = [""] * table.num_rows
    get = [columns.get(c, empty) for c in MANIFEST_COLUMNS]
    return [
        SampleRow(**{f: str(col[i] or "") for f, col in zip(MANIFEST_COLUMNS, get, strict=True)})
        for i in range(table.num_rows)
    ]


def read_excluded(root: Path) -> Counter[str]:
    """Excluded samples by reason (the part before ``:``: ``exact_duplicate_of:<id>``)."""
    path = root / "excluded.parquet"
    if not path.is_file():
        return Counter()
    table = _parquet(path, ["reason"])
    if "reason" not in table.column_names:
        raise MalformedFileError(str(path), "no `reason` column")
    return Counter(str(r or "unknown").split(":", 1)[0] for r in table.column("reason").to_pylist())


def photo_bytes(dataset: DatasetFacts, sample: SampleRow) -> bytes | None:
    """A sample's JPEG: its class-folder file, else its member of the WebDataset shard, else
    its row of the Parquet file."""
    if sample.sample_path:
        path = dataset.path / sample.sample_path
        if path.is_file():
            return path.read_bytes()
    if sample.wds_shard and (dataset.path / sample.wds_shard).is_file():
        return _shard_member(dataset.path / sample.wds_shard, sample.key)
    if sample.parquet_file and (dataset.path / sample.parquet_file).is_file():
        from oiforge.contracts import find_parquet_image

        try:
            return find_parquet_image(dataset.path / sample.parquet_file, sample.key)
        except (OiforgeError, ValueError):
            return None
    return None


def _shard_member(shard: Path, key: str) -> bytes | None:
    try:
        with tarfile.open(shard, "r:") as tar:
            for member in tar:
                stem, _, ext = member.name.partition(".")
                if stem == key and ext.lower() in ("jpg", "jpeg", "png", "webp"):
                    fh = tar.extractfile(member)
                    return fh.read() if fh else None
    except (tarfile.TarError, OSError):
        return None
    return None


# --- selection, spec, download --------------------------------------------------------


def find_selection(dataset: DatasetFacts, given: Path | None, run: Path) -> Path | Missing:
    """``--selection``, else the Parquet file beside the dataset whose SHA-256 the lock names
    (``selection.parquet`` first: the others are hashed only while it is not found)."""
    if given is not None:
        return given
    wanted = str((dataset.lock.get("inputs") or {}).get("selection_sha256") or "")
    found = sorted(
        dataset.path.parent.glob("*.parquet"), key=lambda p: p.name != "selection.parquet"
    )
    for candidate in found if wanted else []:
        if sha256_of(candidate) == wanted:
            return candidate
    return Missing(
        "selection.parquet",
        "no Parquet file beside the dataset has the SHA-256 its oiforge.lock names",
        f"oiforge present {run} --selection SELECTION.parquet",
    )


def read_selection(path: Path) -> SelectionFacts:
    import pyarrow.compute as pc

    cols = ["image_id", "split", "label_name", "source", "confidence", "box_index", "spec_hash"]
    table = _parquet(path, cols)
    for needed in ("image_id", "label_name"):
        if needed not in table.column_names:
            raise MalformedFileError(str(path), f"no `{needed}` column")
    meta = table.schema.metadata or {}
    version = meta.get(b"oiforge.open_images_version", b"").decode("utf-8", "replace")
    pairs = set(zip(table["label_name"].to_pylist(), table["image_id"].to_pylist(), strict=True))
    splits = set(zip(table["split"].to_pylist(), table["image_id"].to_pylist(), strict=True))
    boxes = table["box_index"].drop_null() if "box_index" in table.column_names else []
    conf = pc.min(table["confidence"]).as_py() if "confidence" in table.column_names else None
    hashes = set(table["spec_hash"].to_pylist()) if "spec_hash" in table.column_names else set()
    return SelectionFacts(
        path=path,
        version=version,
        spec_hash=",".join(sorted(str(h) for h in hashes if h)),
        rows=table.num_rows,
        images=len({i for _, i in pairs}),
        images_per_class=dict(sorted(Counter(n for n, _ in pairs).items())),
        images_per_split=dict(Counter(s for s, _ in splits)),
        sources=Counter(str(s) for s in table["source"].to_pylist())
        if "source" in table.column_names
        else Counter(),
        boxes=len(boxes),
        min_confidence=None if conf is None or math.isnan(conf) else float(conf),
        image_ids=frozenset(i for _, i in pairs),
    )


def find_spec(selection: SelectionFacts, given: Path | None) -> SelectionFacts:
    """Attach the spec YAML whose hash selection.parquet carries (``--spec``, or beside it)."""
    from dataclasses import replace

    from oiforge.spec import canonical_hash, load_spec

    candidates = [given] if given else sorted(selection.path.parent.glob("*.y*ml"))
    for path in candidates:
        try:
            spec = load_spec(path)
        except OiforgeError:
            if given:
                raise
            continue
        hashes = {spec.spec_hash(), canonical_hash(spec.select)}
        if given or selection.spec_hash in hashes:
            section = spec.select.model_dump(mode="json")
            section["hash_matches"] = selection.spec_hash in hashes
            return replace(selection, spec=section, spec_path=path)
    return selection


def find_store(selection_path: Path | None, dataset: Path, given: Path | None) -> Path | Missing:
    """``--store``, else a folder beside the selection or dataset holding journal.sqlite."""
    if given is not None:
        return given
    roots = [p for p in (selection_path, dataset) if p is not None]
    for root in roots:
        for candidate in sorted(root.parent.iterdir()):
            if (candidate / "journal.sqlite").is_file():
                return candidate
    return Missing(
        "download journal",
        "no store folder with journal.sqlite beside the selection or dataset",
        f"oiforge present RUN --store STORE_DIR   "
        f"(or: oiforge download SELECTION --out {dataset.parent}/store)",
    )


def read_download(store: Path, image_ids: frozenset[str]) -> DownloadFacts:
    """Journal statuses of the selection's images (all rows if the selection is unknown)."""
    from oiforge.contracts.journal import read_journal

    table = read_journal(store)
    statuses: Counter[str] = Counter()
    errors: dict[str, list[tuple[str, str]]] = {}
    rows = zip(*(table[c].to_pylist() for c in ("image_id", "status", "error")), strict=True)
    for image_id, status, error in rows:
        if image_ids and image_id not in image_ids:
            continue
        statuses[status] += 1
        if status != "ok" and len(errors.setdefault(status, [])) < 3:
            errors[status].append((image_id, str(error or "")))
    stats = read_mapping(store / "stats.json") if (store / "stats.json").is_file() else {}
    return DownloadFacts(store, statuses, errors, stats)


# --- tables shipped with oiforge, and measured serve capacity -------------------------


def read_gpu_table() -> dict[str, Any]:
    """The GPU instance table ``oiforge estimate`` prices with (and its date)."""
    from oiforge.paths import package_data

    table = read_mapping(package_data("train", "gpu_instances.yaml"))
    if not isinstance(table.get("instances"), list):
        raise MalformedFileError("gpu_instances.yaml", "no `instances` list")
    return table


def read_prices(path: Path | None) -> dict[str, Any]:
    from oiforge.paths import package_data

    source = path or package_data("present", "prices.yaml")
    if not source.is_file():
        raise StageError(f"no price table at {source}")
    table = read_mapping(source)
    for key in ("table_date", "hours_per_month", "replica", "managed"):
        if key not in table:
            raise MalformedFileError(str(source), f"no `{key}` in the price table")
    return table


def read_serve_bench(path: Path) -> tuple[float, str] | None:
    """(server CPU milliseconds per request, what) from ``bench_serve.json``: its highest
    "server CPU per request" row (the conservative one), else its best served requests/s on
    the bench machine's cores; None when the file is absent or has neither."""
    if not path.is_file():
        return None
    data = read_mapping(path)
    rows = [r for r in data.get("rows") or [] if isinstance(r, dict)]
    cores = int((data.get("machine") or {}).get("cores") or 1)
    when = f"{path.name} of {data.get('date', 'undated')}"
    cpu = [r for r in rows if str(r.get("metric", "")).endswith("server CPU per request")]
    cpu = [r for r in cpu if isinstance(r.get("value"), int | float) and r["value"] > 0]
    if cpu:
        worst = max(cpu, key=lambda r: float(r["value"]))
        return float(worst["value"]), f"{when}: {worst['metric']}"
    served = [
        (float(r["extra"]["ok_rps"]), str(r.get("metric")))
        for r in rows
        if isinstance(r.get("extra"), dict) and isinstance(r["extra"].get("ok_rps"), int | float)
    ]
    served = [(rps, metric) for rps, metric in served if rps > 0]
    if not served:
        return None
    rps, metric = max(served)
    return 1000.0 * cores / rps, f"{when}: {metric}, {rps:.1f} requests/s served on {cores} cores"
