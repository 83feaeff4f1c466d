"""The train stage: class-folder or WebDataset datasets -> a run directory.

Public API (each name loads its module on first use, so ``oiforge.train.config`` — the
``TrainConfig`` a spec's ``train:`` section is checked against — imports without torch)::

    from oiforge.train import TrainConfig, build_config, run_training, train, load_trained
    trained = load_trained("runs/cats")       # .model .classes .mids .preprocessing .config

Modules: ``config`` (the options and why their defaults), ``dataset`` (finding samples),
``images`` (decoding, augmentation, batches), ``models`` (networks, weights, the partial cut,
test-time augmentation), ``cache`` (features and activations computed once, and what the
probe, MLP head and partial train on), ``heads`` (the linear probe by L-BFGS and
cross-validation), ``steps`` (optimizer, loss, learning-rate schedule, one step, an epoch of
steps), ``loop`` (``run_training``: the loop, top to bottom), ``auto`` (``--mode auto``:
candidates and the pick), ``rundir`` (the run directory's files, checkpoints, curves),
``ddp`` (several processes), ``estimate``. Progress events: ``oiforge.progress``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oiforge.lazy import lazy_attributes

if TYPE_CHECKING:
    from oiforge.train.config import TrainConfig, build_config
    from oiforge.train.loop import run_training, train
    from oiforge.train.rundir import TrainedModel, load_trained

__getattr__ = lazy_attributes(
    __name__,
    {
        "oiforge.train.config": ("TrainConfig", "build_config"),
        "oiforge.train.rundir": ("TrainedModel", "load_trained"),
        "oiforge.train.loop": ("run_training", "train"),
    },
)

__all__ = ["TrainConfig", "TrainedModel", "build_config", "load_trained", "run_training", "train"]
