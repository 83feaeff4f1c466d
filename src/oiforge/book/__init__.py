"""The book stage: an A-Z picture book of Open Images photos, as print-ready PDFs.

    from oiforge.book import plan_book, write_plan, write_selection, render_book, read_plan

    plan = plan_book(catalog, build_request(load_config("book.yaml"), {}))   # book.json
    write_selection(plan, "out/selection.parquet")       # -> oiforge download -> out/store
    result = render_book(plan, "out", store="out/store") # interior.pdf, cover.pdf, ...
    render_book(read_plan("out/book.json"), "again", "out/store")  # byte-identical

Stages exchange files: plan -> ``book.json`` + ``selection.parquet`` -> download -> ``store/``
-> render -> ``interior.pdf``, ``cover.pdf``, ``attribution.json``, final ``book.json``;
``check_pdf`` reads a PDF back and checks it against a print service's rules.

Modules: ``model`` (book.json, options, settings files), ``plan`` (classes and photos from the
catalog, selection.parquet), ``query`` (the SQL), ``words`` (word lists), ``photos`` (files to
pixels, the printed photos), ``layout`` (geometry, grids, presets), ``text`` (fonts, every
script), ``pages`` (drawing), ``credits``, ``render`` (the PDFs), ``check`` (PDF checks).
"""

from oiforge.book.check import CheckReport, check_pdf
from oiforge.book.layout import PRESETS, Preset
from oiforge.book.model import (
    BookPlan,
    LayoutOptions,
    LetterPlan,
    Photo,
    PlanRequest,
    SelectOptions,
    build_request,
    load_config,
    read_plan,
    read_settings,
    setting_keys,
    write_plan,
)
from oiforge.book.photos import Dropped
from oiforge.book.plan import plan_book, plan_from_catalog, plan_to_selection, write_selection
from oiforge.book.render import RenderResult, render_book

__all__ = [
    "PRESETS",
    "BookPlan",
    "CheckReport",
    "Dropped",
    "LayoutOptions",
    "LetterPlan",
    "Photo",
    "PlanRequest",
    "Preset",
    "RenderResult",
    "SelectOptions",
    "build_request",
    "check_pdf",
    "load_config",
    "plan_book",
    "plan_from_catalog",
    "plan_to_selection",
    "read_plan",
    "read_settings",
    "render_book",
    "setting_keys",
    "write_plan",
    "write_selection",
]
