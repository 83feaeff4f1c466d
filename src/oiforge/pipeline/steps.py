"""Each stage run the way its command runs it, by its public Python API, on the working folder.

A stage's own resume is what makes a killed run continue: the download journal skips what is
``ok``, the build's cache keeps rendered images and its outputs appear atomically, and train
resumes its last checkpoint (``resume`` is True when the last attempt with the same settings
and inputs did not finish). Each function returns a one-line summary.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from oiforge.errors import StageError
from oiforge.pipeline.observer import Observer
from oiforge.pipeline.settings import (
    Settings,
    book_request,
    book_sources,
    download_config,
    train_config,
    train_launch,
)

if TYPE_CHECKING:
    from oiforge.contracts import Selection
    from oiforge.distributed import BackendOptions

log = logging.getLogger(__name__)

SELECTION: Final = "selection.parquet"
STORE: Final = "store"
DATASET: Final = "dataset"
RUN: Final = "run"
BOOK: Final = "book"
DECK: Final = "deck"
#: Keys that decide the bytes of a stored image: when they change, the store starts afresh.
STORE_FORMAT: Final = ("max_side", "jpeg_quality")
STORE_FORMAT_FILE: Final = "store-format.json"


def run_select(s: Settings, obs: Observer, _resume: bool) -> str:
    sec = s.spec.select
    review = s.beside_spec(sec.review)
    with obs.status("selecting"):
        if sec.catalog:
            from oiforge.postgres import select_pg

            result = select_pg(s.spec, sec.catalog)
        else:
            from oiforge.catalog import open_catalog, select, select_into

            with open_catalog(sec.version, s.endpoints, fetch_missing=not sec.no_fetch) as cat:
                if review is None:  # written a slice at a time
                    written = select_into(s.spec, s.path(SELECTION), catalog=cat)
                    return f"{written.num_rows:,} rows of {len(written.counts)} classes"
                result = select(s.spec, catalog=cat)
        result = _reviewed(result, review)
        result.write(s.path(SELECTION))
    return f"{result.table.num_rows:,} rows of {len(result.counts)} classes"


def _reviewed(result: Selection, review: Path | None) -> Selection:
    if review is None:
        return result
    from oiforge.reviews import apply_reviews, read_review_file

    return dataclasses.replace(result, table=apply_reviews(result.table, read_review_file(review)))


def run_download(s: Settings, obs: Observer, _resume: bool) -> str:
    config, store = download_config(s), s.path(STORE)
    fresh = _fresh_store(store, {k: getattr(config, k) for k in STORE_FORMAT})
    backend = _backend(s.spec.download)
    with obs.download_progress("download") as progress:
        if backend.is_sharded:
            from oiforge.distributed import run_download_sharded

            summary = run_download_sharded(
                s.path(SELECTION), store, config, s.endpoints, progress, **backend.kwargs()
            )
        else:
            from oiforge.download import download

            summary = download(s.path(SELECTION), store, config, s.endpoints, progress)
    if summary.stopped:
        raise StageError(f"download stopped early: {summary.stopped}")
    failed = ", ".join(f"{k} {v}" for k, v in sorted(summary.journal.items()) if k != "ok")
    return (
        f"{summary.ok} fetched, {summary.skipped} done before{fresh}; store: "
        f"{summary.journal.get('ok', 0)} ok" + (f", {failed}" if failed else "")
    )


def _fresh_store(store: Path, store_format: dict[str, Any]) -> str:
    """Empty ``store`` when its images were stored at another size or quality (the download
    keeps what is there); record the format it holds now."""
    import json

    from oiforge.atomic import write_text_atomic

    marker = store / STORE_FORMAT_FILE
    fresh = ""
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) != store_format:
        log.info("the store holds images of another format: starting it afresh")
        shutil.rmtree(store)
        fresh = " (a fresh store: the images there had another max_side/jpeg_quality)"
    store.mkdir(parents=True, exist_ok=True)
    write_text_atomic(marker, json.dumps(store_format, sort_keys=True) + "\n")
    return fresh


def transient_failures(s: Settings) -> str | None:
    """Why an up-to-date download runs again: failures a rerun retries (timeouts, 5xx)."""
    from oiforge.contracts import is_transient, status_counts

    if not (s.path(STORE) / "journal.sqlite").is_file():
        return None
    left = sum(n for status, n in status_counts(s.path(STORE)).items() if is_transient(status))
    return f"{left} transient download failures to retry" if left else None


def _backend(section: Any) -> BackendOptions:
    from oiforge.distributed import BackendOptions

    return BackendOptions(section.backend, section.ray_address, section.shards)


def run_build(s: Settings, obs: Observer, _resume: bool) -> str:
    from oiforge.build import BuildInputs, build_dataset, catalog_md5s, read_exclude_list

    sec = s.spec.build
    inputs = BuildInputs(
        selection=s.path(SELECTION),
        store=s.path(STORE),
        out=s.path(DATASET),
        spec=s.spec.build_spec(),
        name=s.spec.name,
        version=s.spec.select.version,
        exclude=read_exclude_list(s.beside_spec(sec.exclude_list)),
        catalog_md5s=catalog_md5s(s.beside_spec(sec.catalog)),
        workers=sec.workers,
    )
    review = s.beside_spec(sec.review)
    if review is not None:
        from oiforge.reviews import exclude_rejected

        inputs = dataclasses.replace(
            inputs, exclude=exclude_rejected(inputs.exclude, inputs.selection, review)
        )
    backend = _backend(sec)
    with obs.counter("build") as progress:
        if backend.is_sharded:
            from oiforge.distributed import run_build_sharded

            result = run_build_sharded(inputs, progress, **backend.kwargs())
        else:
            result = build_dataset(inputs, progress)
    splits = ", ".join(f"{k} {v}" for k, v in sorted(result.per_split.items()))
    return f"{result.samples} samples of {result.classes} classes ({splits})"


def run_train(s: Settings, obs: Observer, resume: bool) -> str:
    config, run = train_config(s), s.path(RUN)
    resume = resume and (run / "config.yaml").is_file()
    if not resume and run.exists():  # a run of other settings or data: start afresh
        shutil.rmtree(run)
    gpus, procs = train_launch(s)
    if gpus or procs:
        import json

        from oiforge.train.launch import DEFAULT_MASTER_PORT, launch, plan_launch

        plan = plan_launch(gpus, procs, 1, 0, None, DEFAULT_MASTER_PORT)
        assert plan is not None  # gpus or procs
        launch(config, plan, resume)
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    else:
        from oiforge.train import run_training

        summary = obs.follow(run_training(config, resume=resume))
    acc, val_map = summary.get("best_val_acc"), summary.get("best_val_map")
    shown = f"best val_acc {acc:.3f}" if isinstance(acc, float) else "trained"
    if isinstance(val_map, float):
        shown = f"best val mAP {val_map:.3f}"
    return f"{shown} at epoch {summary.get('best_epoch')} of {summary.get('epochs_run')}"


def run_evaluate(s: Settings, obs: Observer, _resume: bool) -> str:
    from oiforge.evaluate import run_evaluation, summary_meaning

    sec = s.spec.evaluate
    dataset = s.beside_spec(sec.dataset) or s.path(DATASET)
    events = run_evaluation(
        s.path(RUN), dataset, batch_size=sec.batch_size, workers=sec.workers, worst=sec.worst,
        tta=sec.tta, target_precision=sec.target_precision,
    )  # fmt: skip
    summary = obs.follow(events)
    said = summary_meaning(summary)  # in photos, with its confidence interval
    if summary.get("task") == "multilabel":
        return said or f"{summary.get('split')} split: mAP {summary.get('map', float('nan')):.3f}"
    f1 = f"macro F1 {summary.get('macro_f1', float('nan')):.3f}"
    return f"{said}; {f1}" if said else f"{summary.get('split')} split: {f1}"


def run_export(s: Settings, obs: Observer, _resume: bool) -> str:
    from oiforge.serve import PARITY_TOLERANCE, export_run

    with obs.status("exporting to ONNX"):
        result = export_run(s.path(RUN), tta=s.spec.export.tta)
    if result.max_abs_diff > PARITY_TOLERANCE:
        raise StageError(
            f"export: torch and ONNX Runtime differ by {result.max_abs_diff:.2e} "
            f"(> {PARITY_TOLERANCE:.0e}); model.onnx is not trustworthy"
        )
    return f"{result.onnx_path.name}, parity max |diff| {result.max_abs_diff:.1e}"


def run_book(s: Settings, obs: Observer, _resume: bool) -> str:
    from oiforge.book import plan_from_catalog, render_book, write_plan, write_selection
    from oiforge.download import DownloadConfig, download

    out = s.path(BOOK)
    with obs.status("planning the book"):
        plan = plan_from_catalog(book_request(s), s.endpoints)
    out.mkdir(parents=True, exist_ok=True)
    write_plan(plan, out / "book.json")
    write_selection(plan, out / SELECTION)
    config = DownloadConfig(sources=book_sources(s))
    with obs.download_progress("book photos") as progress:
        download(out / SELECTION, out / STORE, config, s.endpoints, progress)
    with obs.counter("book pages") as pages:
        done = [0]

        def tick(_letter: str) -> None:
            done[0] += 1
            pages(done[0], len(plan.letters))

        result = render_book(plan, out, out / STORE, on_letter=tick)
    return f"{result.pages} pages, {result.printed} photos, letters {''.join(result.letters)}"


def run_present(s: Settings, obs: Observer, _resume: bool) -> str:
    from oiforge.present import Options, make_deck

    sec = s.spec.present
    if sec is None:
        raise StageError("present: the spec has no present: section")
    given = {
        "serve_bench": s.beside_spec(sec.serve_bench),
        "prices": s.beside_spec(sec.prices),
    }
    options = Options(
        dataset=s.path(DATASET),
        selection=s.path(SELECTION),
        store=s.path(STORE),
        spec=s.spec_path,
        learning_curve=sec.learning_curve,
        estimate=sec.estimate,
        usd_per_hour=sec.usd_per_hour,
        target=sec.target,
        peak_rps=sec.peak_rps,
        **{k: v for k, v in given.items() if v is not None},
    )
    with obs.status("gathering the deck") as status:
        result = make_deck(
            s.path(RUN), s.path(DECK), options, pdf=sec.pdf, chromium=sec.chromium,
            progress=status,
        )  # fmt: skip
    missing = f", {len(result.missing)} missing inputs (see the deck)" if result.missing else ""
    return f"{result.slides} slides{missing}"
