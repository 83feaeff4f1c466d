"""The serve stage: a trained run -> ``model.onnx`` + ``labels.json``, predictions, an HTTP service.

Public API (each name loads its module on first use, so ``oiforge predict`` never imports
FastAPI and nothing here imports torch until ``export_run``/``export_model`` is called)::

    from oiforge.serve import Predictor, ServeConfig, create_app, export_run, predict_sources
    result = export_run(Path("runs/cats"))              # model.onnx, labels.json, MODEL.md
    predictor = Predictor(result.onnx_path)             # ONNX Runtime, top-k per image
    for item in predict_sources(predictor, expand_sources(["photos/"])): ...
    app = create_app(result.onnx_path, ServeConfig())   # the ASGI app; run_server blocks
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oiforge.lazy import lazy_attributes

if TYPE_CHECKING:
    from oiforge.serve.app import create_app
    from oiforge.serve.batch import ItemResult, expand_sources, predict_sources
    from oiforge.serve.export import PARITY_TOLERANCE, ExportResult, export_model, export_run
    from oiforge.serve.holder import ServeConfig
    from oiforge.serve.predictor import Predictor, Score
    from oiforge.serve.server import run_server

__getattr__ = lazy_attributes(
    __name__,
    {
        "oiforge.serve.app": ("create_app",),
        "oiforge.serve.batch": ("ItemResult", "expand_sources", "predict_sources"),
        "oiforge.serve.export": ("PARITY_TOLERANCE", "ExportResult", "export_model", "export_run"),
        "oiforge.serve.holder": ("ServeConfig",),
        "oiforge.serve.predictor": ("Predictor", "Score"),
        "oiforge.serve.server": ("run_server",),
    },
)


__all__ = [
    "PARITY_TOLERANCE",
    "ExportResult",
    "ItemResult",
    "Predictor",
    "Score",
    "ServeConfig",
    "create_app",
    "expand_sources",
    "export_model",
    "export_run",
    "predict_sources",
    "run_server",
]
