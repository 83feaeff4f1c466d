"""Book fixtures: a store of generated photos and a plan over it (no catalog needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.book.helpers import letter

from oiforge.book.model import BookPlan, LayoutOptions


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture()
def small_plan(store: Path) -> BookPlan:
    """Four letters with 1, 4, 5 and 10 photos (grids 1, 4, 4, 9)."""
    letters = (
        letter(store, "A", "Apple", 1, 1),
        letter(store, "B", "Bat (Animal)", 4, 2),
        letter(store, "C", "Cat", 5, 3),
        letter(store, "D", "Dog", 10, 4),
    )
    return BookPlan(letters=letters, layout=LayoutOptions(subtitle="Test", author="Tester"))
