"""Fixtures for the evaluate tests: the train tests' one-torch-thread rule applies here too."""

from __future__ import annotations

from train.conftest import one_torch_thread

__all__ = ["one_torch_thread"]
