"""`oiforge` commands of the serve stage: export, predict, serve.

Stage code is imported inside the commands; ``predict`` and ``serve`` never import torch.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from oiforge.cli._common import console, err_console, progress_bar

if TYPE_CHECKING:
    from oiforge.serve.batch import ItemResult


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("export")(export)
    app.command("predict")(predict)
    app.command("serve")(serve)


def export(
    run_dir: Path = typer.Argument(..., help="A training run dir (config.yaml, best.safetensors)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output dir (default: RUN_DIR)."),
    tta: str = typer.Option(
        "none", "--tta", help="Test-time augmentation in the graph: none | flip | multi-crop."
    ),
) -> None:
    """Export a trained run to model.onnx + labels.json + MODEL.md (checks ONNX parity)."""
    from oiforge.serve.export import PARITY_TOLERANCE, export_run

    with err_console.status("exporting to ONNX"):
        result = export_run(run_dir, out, tta)
    ok = result.max_abs_diff <= PARITY_TOLERANCE
    mark = "[green]ok[/]" if ok else "[bold red]OVER TOLERANCE[/]"
    console.print(f"wrote {result.onnx_path}, labels.json, MODEL.md in {result.out_dir}")
    console.print(f"parity torch vs ONNX Runtime: max |diff| {result.max_abs_diff:.2e} {mark}")
    if not ok:
        raise typer.Exit(1)


def _rows(item: ItemResult) -> list[dict[str, Any]]:
    if item.status != "ok":
        return [{"source": item.source, "status": item.status, "rank": "", "error": item.error}]
    return [
        {
            "source": item.source,
            "status": "ok",
            "rank": r,
            "name": s.name,
            "mid": s.mid,
            "probability": f"{s.probability:.6f}",
        }
        for r, s in enumerate(item.scores, 1)
    ]


def _print_table(results: list[ItemResult]) -> None:
    from rich.table import Table

    table = Table("source", "status", "top-k (probability)")
    for item in results:
        text = (
            item.error
            if item.status != "ok"
            else ", ".join(f"{s.name} ({s.probability:.3f})" for s in item.scores)
        )
        style = "" if item.status == "ok" else "red"
        table.add_row(item.source, item.status, text, style=style)
    console.print(table)


def _print_json(results: list[ItemResult]) -> None:
    payload = [
        {
            "source": i.source,
            "status": i.status,
            "error": i.error or None,
            "top_k": [vars(s) for s in i.scores],
            "width": i.width,
            "height": i.height,
        }
        for i in results
    ]
    typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))


def _print_csv(results: list[ItemResult]) -> None:
    fields = ["source", "status", "rank", "name", "mid", "probability", "error"]
    writer = csv.DictWriter(sys.stdout, fieldnames=fields, restval="", lineterminator="\n")
    writer.writeheader()
    for item in results:
        writer.writerows(_rows(item))


def predict(
    model: Path = typer.Argument(..., help="model.onnx or the export dir holding it."),
    images: list[str] = typer.Argument(..., help="Image files, folders, globs, http(s) URLs."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, max=1000, help="Classes per image."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV (one row per class)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, max=1024),
    threads: int = typer.Option(0, "--threads", min=0, help="ONNX Runtime threads (0: auto)."),
) -> None:
    """Top-k classes for images with ONNX Runtime (no torch)."""
    from oiforge.errors import InvalidInputError
    from oiforge.serve.batch import expand_sources, predict_sources
    from oiforge.serve.predictor import Predictor

    if as_json and as_csv:
        raise InvalidInputError("choose one of --json and --csv")
    predictor = Predictor(model, threads=threads)
    sources = expand_sources(images)
    results = []
    with progress_bar(transient=True) as progress:
        task = progress.add_task("predicting", total=len(sources))
        for item in predict_sources(predictor, sources, top_k, batch_size):
            results.append(item)
            progress.advance(task)
    if as_json:
        _print_json(results)
    elif as_csv:
        _print_csv(results)
    else:
        _print_table(results)
    failed = sum(1 for r in results if r.status != "ok")
    if failed:
        err_console.print(f"[yellow]{failed} of {len(results)} images failed[/]")


def serve(
    model: Path = typer.Argument(..., help="model.onnx or the export dir holding it."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    threads: int = typer.Option(
        0, "--threads", min=0, help="ONNX Runtime threads per model call (0: one)."
    ),
    workers: int = typer.Option(
        0,
        "--workers",
        "--decode-threads",
        min=0,
        help="Threads that decode images and run the model (0: one per core).",
    ),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Images per model call."),
    max_pending: int = typer.Option(
        64, "--max-pending", min=1, help="Images queued before requests get a quick 503."
    ),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", min=0.001),
    max_images: int = typer.Option(16, "--max-images", min=1, help="Images per request."),
    max_pixels: int = typer.Option(50_000_000, "--max-pixels", min=1),
    url_inputs: bool = typer.Option(True, "--url-inputs/--no-url-inputs"),
    url_allow_private: bool = typer.Option(
        False, "--url-allow-private", help="Let URL inputs reach private/loopback addresses."
    ),
) -> None:
    """Serve the model over HTTP (FastAPI + uvicorn + ONNX Runtime); API key: $OIFORGE_API_KEY."""
    from oiforge.serve.holder import ServeConfig
    from oiforge.serve.server import run_server

    config = ServeConfig(
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_images=max_images,
        max_pixels=max_pixels,
        url_inputs=url_inputs,
        url_allow_private=url_allow_private,
        threads=threads,
        max_batch=max_batch,
        workers=workers,
        max_pending=max_pending,
    )
    err_console.print(f"serving {model} on http://{host}:{port} (Ctrl-C stops gracefully)")
    run_server(model, config, host=host, port=port)
