"""The train stage: class-folder or WebDataset datasets -> a run directory.

Public API::

    from oiforge.train import TrainConfig, build_config, run_training, train, load_trained
    trained = load_trained("runs/cats")       # .model .classes .mids .preprocessing .config
"""

from __future__ import annotations

from oiforge.train.config import TrainConfig, build_config
from oiforge.train.rundir import TrainedModel, load_trained
from oiforge.train.trainer import run_training, train

__all__ = ["TrainConfig", "TrainedModel", "build_config", "load_trained", "run_training", "train"]
