"""`oiforge` commands of the catalog stage: ``catalog fetch``, ``classes``, ``tree``, ``select``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from oiforge.cli._common import console, create_app, print_table, progress_bar, status
from oiforge.cli.browse import pg_load
from oiforge.errors import InvalidInputError

if TYPE_CHECKING:
    from oiforge.catalog import Catalog, FetchProgress, Selection, TreeNode
    from oiforge.contracts import WrittenSelection
    from oiforge.endpoints import Endpoints

_VERSION = typer.Option("v7", "--version", help="Open Images version (v1 to v7).")
_BASE = typer.Option(None, "--metadata-base", help="Base URL of the official metadata files.")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    catalog_app = create_app("Official Open Images metadata: fetch and ingest.")
    catalog_app.command("fetch")(fetch_command)
    catalog_app.command("to-postgres")(pg_load)
    app.add_typer(catalog_app, name="catalog")
    app.command("classes")(classes_command)
    app.command("tree")(tree_command)
    app.command("select")(select_command)


def _endpoints(metadata_base: str | None) -> Endpoints:
    from oiforge.endpoints import Endpoints

    return Endpoints.from_env(metadata_base=metadata_base)


def _csv(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


def fetch_command(
    version: str = _VERSION,
    kinds: str | None = typer.Option(
        None, "--kinds", help="Comma list: images, human_labels, machine_labels, boxes, ..."
    ),
    splits: str | None = typer.Option(None, "--splits", help="Comma list of splits."),
    metadata_base: str | None = _BASE,
    ingest: bool = typer.Option(True, "--ingest/--no-ingest", help="Build the Parquet copies."),
) -> None:
    """Download the official metadata files (resumable, verified) and ingest them."""
    from oiforge.catalog import fetch, open_catalog

    ep = _endpoints(metadata_base)
    with progress_bar() as bars:
        tasks: dict[str, Any] = {}

        def report(p: FetchProgress) -> None:
            if p.relpath not in tasks:
                tasks[p.relpath] = bars.add_task(p.relpath.rsplit("/", 1)[-1], total=p.total)
            bars.update(tasks[p.relpath], completed=p.done, total=p.total)

        results = fetch(version, _csv(kinds), _csv(splits), ep, progress=report)
    _print_fetch(results)
    failed = [r for r in results if r.status == "failed"]
    if ingest and not failed:
        with console.status("ingesting to Parquet..."):
            open_catalog(version, ep).close()
    if failed:
        raise typer.Exit(1)


def _print_fetch(results: list[Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table("file", "split", "status", "md5 / error")
    for r in results:
        style = {"failed": "red", "fetched": "green"}.get(r.status, "")
        detail = r.error if r.status == "failed" else (r.md5_hex or "")
        table.add_row(r.file.relpath, r.file.split or "", Text(r.status, style), Text(detail))
    console.print(table)


def classes_command(
    query: str = typer.Argument("", help="Name, part of a name, or MID (fuzzy)."),
    version: str = _VERSION,
    boxable: bool = typer.Option(False, "--boxable", help="Only the 600 boxable classes."),
    limit: int = typer.Option(20, "--limit", min=1, help="Show at most N classes."),
    trainable: bool = typer.Option(
        False, "--trainable", help="Only labels with enough human-verified train/val images."
    ),
    min_val: int = typer.Option(50, "--min-val", min=0, help="--trainable: validation images."),
    min_train: int = typer.Option(20, "--min-train", min=0, help="--trainable: train images."),
    val_splits: str = typer.Option(
        "validation", "--val-splits", help="--trainable: splits counted as validation."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="--trainable: write every row to .csv or .parquet."
    ),
) -> None:
    """Search classes: MID, boxable, and positives/boxes per split once metadata is fetched."""
    from rich.markup import escape
    from rich.table import Table

    from oiforge.catalog import open_catalog

    if trainable:
        rule = (min_val, min_train, _csv(val_splits) or ())
        _trainable(query, version, rule, limit, out)
        return
    with open_catalog(version, fetch_missing=False) as cat:
        hits = cat.search(query, limit=limit, boxable_only=boxable)
        if not hits and query:
            cat.resolve(query)  # raises UnknownClassError with suggestions (exit 2)
        counts = cat.class_counts([h.mid for h in hits]).to_pylist() if hits else []
        show_counts = bool(cat.ingested)
    cols = ["MID", "name", "boxable"] + (
        [c for c in (counts[0] if counts else {}) if c.startswith(("positives", "boxes"))]
        if show_counts
        else []
    )
    table = Table(*cols, title=f"Open Images {version} classes")
    for hit, row in zip(hits, counts, strict=True):
        alias = f" (was {hit.matched!r})" if hit.matched.lower() != hit.name.lower() else ""
        cells = [escape(hit.mid), escape(hit.name + alias), "yes" if hit.boxable else ""]
        table.add_row(*cells, *(f"{row[c]:,}" for c in cols[3:]))
    console.print(table)


def _trainable(
    query: str, version: str, rule: tuple[int, int, tuple[str, ...]], limit: int, out: Path | None
) -> None:
    """``classes --trainable``: the README's rule, counted from the label files."""
    from rich.markup import escape
    from rich.table import Table

    from oiforge.catalog import open_catalog, trainable_classes
    from oiforge.catalog.counts import write_table

    min_val, min_train, splits = rule
    with open_catalog(version, fetch_missing=False) as cat, console.status("counting..."):
        table = trainable_classes(cat, min_val, min_train, splits)
    if out is not None:
        write_table(table, out)
    rows = [
        r for r in table.to_pylist()
        if query.lower() in r["label_name"].lower() or query == r["label_mid"]
    ]  # fmt: skip
    src = f"{rows[0]['train_source']}/{rows[0]['val_source']}" if rows else ""
    title = (
        f"Open Images {version}: {table.num_rows:,} trainable labels (>= {min_train} train and "
        f">= {min_val} {'+'.join(splits)} images{', ' + src + ' labels' if src else ''})"
    )
    grid = Table("MID", "name", "boxable", "train images", "val images", title=title)
    for r in rows[:limit]:
        cells = (escape(r["label_mid"]), escape(r["label_name"]), "yes" if r["boxable"] else "")
        grid.add_row(*cells, f"{r['train_images']:,}", f"{r['val_images']:,}")
    console.print(grid)
    if out is not None:
        console.print(f"wrote {table.num_rows:,} rows to {out}")


def tree_command(
    name: str = typer.Argument(..., help="Class name or MID (the root is /m/0bl9f)."),
    version: str = _VERSION,
    parts: bool = typer.Option(False, "--parts", help="Also show Part links."),
    depth: int | None = typer.Option(None, "--depth", min=0, help="Levels to show."),
) -> None:
    """The class hierarchy below a class (a class with several parents shows under each)."""
    from rich.tree import Tree

    from oiforge.catalog import open_catalog

    with open_catalog(version, fetch_missing=False) as cat:
        node = cat.subtree(name, parts=parts, depth=depth)
        tree = Tree(_label(cat, node))
        _grow(cat, tree, node)
    console.print(tree)


def _label(cat: Catalog, node: TreeNode) -> str:
    from rich.markup import escape

    kind = " [dim](part)[/]" if node.kind == "part" else ""
    return f"{escape(cat.name(node.mid))} [dim]{escape(node.mid)}[/]{kind}"


def _grow(cat: Catalog, tree: Any, node: TreeNode) -> None:
    for child in node.children:
        _grow(cat, tree.add(_label(cat, child)), child)


def select_command(
    classes: list[str] | None = typer.Argument(None, help="Class names or MIDs."),
    spec_file: Path | None = typer.Option(None, "--spec", help="A spec YAML (select section)."),
    out: Path = typer.Option(Path("selection.parquet"), "--out", "-o", help="Output file."),
    version: str = _VERSION,
    label_mode: str = typer.Option("image", "--label-mode", help="image or box."),
    expand: bool = typer.Option(False, "--expand", help="Include sub-classes."),
    exclude: list[str] | None = typer.Option(
        None, "--exclude-images-with", help="Drop images with this class (repeatable)."
    ),
    min_confidence: float | None = typer.Option(
        None, "--min-confidence", help="Also machine labels at >= this confidence (image mode)."
    ),
    splits: str = typer.Option("train,validation,test", "--splits", help="Comma list of splits."),
    per_class: int | None = typer.Option(None, "--per-class", min=1, help="At most N per class."),
    balanced: bool = typer.Option(False, "--balanced", help="Cap classes at the smallest one."),
    seed: int = typer.Option(0, "--seed", help="Seed of the per-class sample."),
    multi_label: str = typer.Option(
        "drop", "--multi-label", help="drop, keep-first or multi (multi: verified negatives too)."
    ),
    expand_up: bool = typer.Option(
        False, "--expand-up", help="multi: a positive also counts for selected ancestor classes."
    ),
    negatives: str = typer.Option(
        "none", "--negatives", help="Add photos without the classes: verified, random or both."
    ),
    negatives_ratio: float = typer.Option(
        1.0, "--negatives-ratio", help="Negatives per split: this x a class's positives."
    ),
    negatives_class: str | None = typer.Option(
        None, "--negatives-class", help="Class name of the negatives (default: not <class>)."
    ),
    box_flag: list[str] | None = typer.Option(
        None, "--box-flag", help="FLAG=keep|drop|only, e.g. is_group_of=keep (repeatable)."
    ),
    metadata_base: str | None = _BASE,
    no_fetch: bool = typer.Option(False, "--no-fetch", help="Fail instead of fetching."),
    catalog_url: str | None = typer.Option(
        None, "--catalog", help="Select from a PostgreSQL catalog (postgresql://...) instead."
    ),
    review: Path | None = typer.Option(
        None, "--review", help="Label review file (oiforge browse): drop rejected labels."
    ),
) -> None:
    """Select images/boxes of some classes into selection.parquet and print the counts."""
    from oiforge.catalog import open_catalog, select, select_into
    from oiforge.contracts import WrittenSelection

    spec = _build_spec(
        spec_file,
        classes,
        {
            "version": version,
            "label_mode": label_mode,
            "exclude_images_with": tuple(exclude or ()),
            "min_confidence": min_confidence,
            "splits": _csv(splits),
            "per_class": per_class,
            "balanced": balanced,
            "seed": seed,
            "multi_label": multi_label,
            "expand_up": expand_up,
            "negatives": negatives,
            "negatives_ratio": negatives_ratio,
            "negatives_class": negatives_class,
            "box_flags": _box_flags(box_flag or []),
        },
        expand,
    )
    sec = spec.select  # a spec file's select: section may set these three (relative paths)
    review = review or (spec_file.parent / sec.review if spec_file and sec.review else None)
    catalog_url = catalog_url or sec.catalog
    no_fetch = no_fetch or sec.no_fetch
    if catalog_url is not None:
        _select_postgres(spec, catalog_url, out, review)
        return
    cat = open_catalog(spec.select.version, _endpoints(metadata_base), fetch_missing=not no_fetch)
    with cat, status("selecting..."):
        if review is None:
            written = select_into(spec, out, catalog=cat)
        else:
            result = _reviewed(select(spec, catalog=cat), review)
            written = WrittenSelection.of(result, result.write(out))
    _print_counts(written)


def _reviewed(result: Selection, review: Path | None) -> Selection:
    """``result`` with a browse review file applied (rejected labels dropped)."""
    if review is None:
        return result
    import dataclasses

    from oiforge.reviews import apply_reviews, read_review_file

    table = apply_reviews(result.table, read_review_file(review))
    console.print(f"review {review}: {result.table.num_rows - table.num_rows:,} rows rejected")
    return dataclasses.replace(result, table=table)


def _select_postgres(spec: Any, dsn: str, out: Path, review: Path | None = None) -> None:
    """``select --catalog postgresql://...``: the same selection, from `oiforge pg load`."""
    if not dsn.startswith(("postgresql://", "postgres://")):
        raise InvalidInputError(f"--catalog takes a postgresql:// URL, not {dsn.split('@')[-1]!r}")
    from oiforge.contracts import WrittenSelection
    from oiforge.postgres import select_pg

    with status("selecting from PostgreSQL..."):
        result = _reviewed(select_pg(spec, dsn), review)
        written = WrittenSelection.of(result, result.write(out))
    _print_counts(written)


def _build_spec(
    spec_file: Path | None, classes: list[str] | None, flags: dict[str, Any], expand: bool
) -> Any:
    from oiforge.spec import load_spec, parse_spec

    if spec_file is not None:
        if classes:
            raise InvalidInputError("give class names or --spec, not both")
        return load_spec(spec_file)
    if not classes:
        raise InvalidInputError("name at least one class (or give --spec spec.yaml)")
    specs = [{"name": c, "expand": expand} for c in classes]
    return parse_spec({"select": {"classes": specs, **flags}}, source="options")


def _box_flags(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        flag, sep, rule = item.partition("=")
        if not sep:
            raise InvalidInputError(f"--box-flag wants FLAG=keep|drop|only, got {item!r}")
        out[flag.strip()] = rule.strip()
    return out


def _print_counts(result: WrittenSelection) -> None:
    from oiforge.contracts import SPLITS

    images = result.image_counts
    negs = result.negative_image_counts if result.has_roles else {}
    extra = ["negative images"] if negs else []
    rows = []
    for name, per in result.counts.items():
        cells = [f"{per[s]:,} ({images[name][s]:,})" for s in SPLITS]
        neg = [f"{sum(negs[name].values()):,}"] if negs else []
        rows.append([name, *cells, f"{sum(per.values()):,}", *neg])
    print_table(["class", *(f"{s} rows (images)" for s in SPLITS), "total rows", *extra], rows)
    console.print(f"wrote {result.num_rows:,} rows to {result.path} (spec {result.spec_hash})")
