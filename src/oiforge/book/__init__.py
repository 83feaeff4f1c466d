"""The book stage: an A-Z picture book of Open Images photos, as print-ready PDFs.

    from oiforge.book import plan_book, write_plan, write_selection, render_book, read_plan

    plan = plan_book(catalog, build_request(load_config("book.yaml"), {}))   # book.json
    write_selection(plan, "out/selection.parquet")       # -> oiforge download -> out/store
    result = render_book(plan, "out", store="out/store") # interior.pdf, cover.pdf, ...
    render_book(read_plan("out/book.json"), "again", "out/store")  # byte-identical

Stages exchange files: plan -> ``book.json`` + ``selection.parquet`` -> download -> ``store/``
-> render -> ``interior.pdf``, ``cover.pdf``, ``attribution.json``, final ``book.json``.
"""

from oiforge.book.config import build_request, load_config
from oiforge.book.model import (
    BookPlan,
    LayoutOptions,
    LetterPlan,
    Photo,
    SelectOptions,
    read_plan,
    write_plan,
)
from oiforge.book.pick import Dropped
from oiforge.book.plan import PlanRequest, plan_book
from oiforge.book.render import RenderResult, render_book
from oiforge.book.selection import plan_to_selection, write_selection

__all__ = [
    "BookPlan",
    "Dropped",
    "LayoutOptions",
    "LetterPlan",
    "Photo",
    "PlanRequest",
    "RenderResult",
    "SelectOptions",
    "build_request",
    "load_config",
    "plan_book",
    "plan_to_selection",
    "read_plan",
    "render_book",
    "write_plan",
    "write_selection",
]
