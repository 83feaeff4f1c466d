"""The present stage: a run's artefacts -> the project presentation (HTML deck, Markdown, PDF).

Public API::

    from oiforge.present import Options, make_deck, render_deck
    result = make_deck(Path("run"), Path("deck"), Options(dataset=Path("dataset")), pdf=True)
    render_deck(Path("deck/slides.md"))            # the deck again, from edited Markdown
"""

from __future__ import annotations

from oiforge.present.deck import DeckResult, make_deck, render_deck
from oiforge.present.gather import Options

__all__ = ["DeckResult", "Options", "make_deck", "render_deck"]
