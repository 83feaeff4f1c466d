"""`oiforge` commands of the build stage: ``build``, ``verify``, ``publish``, ``pull``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from oiforge.cli._common import console, err_console, progress_bar
from oiforge.distributed.options import LOCAL, BackendOptions, add_backend_options
from oiforge.errors import SpecError

if TYPE_CHECKING:
    from oiforge.build import BuildInputs, BuildResult


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("build")(add_backend_options(build_command))
    app.command("verify")(verify_command)
    app.command("publish")(publish_command)
    app.command("pull")(pull_command)


def build_command(
    spec_file: Path | None = typer.Argument(None, help="A spec YAML (its `build:` section)."),
    selection: Path = typer.Option(
        Path("selection.parquet"), "--selection", help="From `oiforge select`."
    ),
    store: Path = typer.Option(Path("store"), "--store", help="From `oiforge download`."),
    out: Path = typer.Option(Path("dataset"), "--out", "-o", help="The dataset folder."),
    formats: list[str] = typer.Option(
        [], "--format", "-f", help="folders | webdataset | parquet (repeat)."
    ),
    task: str | None = typer.Option(
        None,
        "--task",
        help="singlelabel (one class a sample) | multilabel (one sample a photo with its "
        "verified positive and negative labels; parquet by default, no folders).",
    ),
    size: int | None = typer.Option(None, "--size", help="Output side in px."),
    aspect: str | None = typer.Option(None, "--aspect", help="keep | square-pad | square-crop."),
    padding: float | None = typer.Option(None, "--padding", help="Box padding (fraction of side)."),
    min_crop: int | None = typer.Option(
        None, "--min-crop", help="Smallest crop side in source px."
    ),
    quality: int | None = typer.Option(None, "--quality", help="Output JPEG quality."),
    split: str | None = typer.Option(
        None, "--split", help="official, or train,val,test fractions."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of a re-split."),
    dedupe: bool | None = typer.Option(None, "--dedupe/--no-dedupe", help="Drop duplicates."),
    near: int | None = typer.Option(
        None, "--near-distance", help="pHash bits for near-duplicates."
    ),
    exclude_list: Path | None = typer.Option(
        None, "--exclude-list", help="ImageID[,box|label_mid][,reason] lines."
    ),
    review: Path | None = typer.Option(
        None, "--review", help="Label review file (oiforge browse): leave rejected labels out."
    ),
    lock: Path | None = typer.Option(None, "--lock", help="Rebuild byte-identical from a lock."),
    catalog: Path | None = typer.Option(
        None, "--catalog", help="Catalog folder: record file MD5s."
    ),
    workers: int | None = typer.Option(None, "--workers", help="Processes (default: all cores)."),
    backend: BackendOptions = LOCAL,
) -> None:
    """Turn the store into a dataset: clean, de-duplicate, crop, split, export, lock."""
    overrides = {
        "formats": tuple(formats) or None, "size": size, "aspect": aspect, "padding": padding,
        "min_crop_side": min_crop, "jpeg_quality": quality, "split": _split(split),
        "split_seed": seed, "dedupe": dedupe, "near_duplicate_distance": near, "task": task,
    }  # fmt: skip
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if lock is not None:
        inputs = _from_lock(lock, spec_file, overrides, selection, store, out, workers)
    else:
        files = {"exclude_list": exclude_list, "catalog": catalog, "review": review}
        inputs = _from_spec(spec_file, overrides, selection, store, out, files, workers)
    result = _run_build(inputs, backend)
    _print_build(result)


def _split(text: str | None) -> Any:
    if text is None or text == "official":
        return text
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError as exc:
        raise SpecError(
            f"--split: 'official' or three fractions like 0.8,0.1,0.1, not {text!r}"
        ) from exc
    if len(parts) != 3:
        raise SpecError("--split: three fractions (train,val,test), e.g. 0.8,0.1,0.1")
    return parts


def _build_spec(base: Any, overrides: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from oiforge.spec import BuildSpec

    data = {**base.model_dump(), **overrides}
    explicit = {*overrides, *base.model_fields_set}
    if overrides.get("task") == "multilabel" and "formats" not in explicit:
        del data["formats"]  # multilabel's own default (parquet): folders cannot hold it
    try:
        return BuildSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SpecError(f"build options: {problems}") from exc


def _from_spec(
    spec_file: Path | None,
    overrides: dict[str, Any],
    selection: Path,
    store: Path,
    out: Path,
    files: dict[str, Path | None],
    workers: int | None,
) -> BuildInputs:
    """Options over the spec's build: section (its files are relative to the spec file)."""
    from oiforge.build import BuildInputs, catalog_md5s, read_exclude_list
    from oiforge.spec import BuildSpec, load_spec

    name, version, base = "dataset", "unknown", BuildSpec()
    if spec_file is not None:
        spec = load_spec(spec_file)
        name, version, base = spec.name, spec.select.version, spec.build_spec()
        section = spec.build.model_dump()
        for key, given in files.items():
            files[key] = given or (spec_file.parent / section[key] if section[key] else None)
        workers = workers or spec.build.workers
    inputs = BuildInputs(
        selection=selection,
        store=store,
        out=out,
        spec=_build_spec(base, overrides),
        name=name,
        version=version,
        exclude=read_exclude_list(files["exclude_list"]),
        catalog_md5s=catalog_md5s(files["catalog"]),
        workers=workers,
    )
    return _with_review(inputs, files["review"])


def _with_review(inputs: BuildInputs, review: Path | None) -> BuildInputs:
    """``inputs`` whose exclude list also holds the labels a review file rejected."""
    if review is None:
        return inputs
    import dataclasses

    from oiforge.reviews import exclude_rejected

    exclude = exclude_rejected(inputs.exclude, inputs.selection, review)
    return dataclasses.replace(inputs, exclude=exclude)


def _from_lock(
    lock: Path,
    spec_file: Path | None,
    overrides: dict[str, Any],
    selection: Path,
    store: Path,
    out: Path,
    workers: int | None,
) -> BuildInputs:
    from oiforge.build import BuildInputs, ExcludeList, read_lock
    from oiforge.spec import BuildSpec

    if spec_file is not None or overrides:
        raise SpecError("--lock fixes every build option; drop the spec file and option flags")
    data = read_lock(lock)
    return BuildInputs(
        selection=selection,
        store=store,
        out=out,
        spec=_build_spec(BuildSpec.model_validate(data["build"]), {}),
        name=str(data.get("name", "dataset")),
        version=str(data.get("open_images_version", "unknown")),
        exclude=ExcludeList.from_entries(data.get("exclude_list", [])),
        catalog_md5s=data.get("catalog_md5s", {}),
        workers=workers,
        expected_files=data["files"],
        expected_environment=data.get("environment", {}),
    )


def _run_build(inputs: BuildInputs, backend: BackendOptions) -> BuildResult:
    with progress_bar() as bar:
        task = bar.add_task("build", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        if backend.is_sharded:
            from oiforge.cli._common import print_shard_event
            from oiforge.distributed import run_build_sharded

            return run_build_sharded(
                inputs, progress=progress, on_event=print_shard_event, **backend.kwargs()
            )
        from oiforge.build import build_dataset

        return build_dataset(inputs, progress)


def _print_build(result: BuildResult) -> None:
    per = ", ".join(f"{k} {v}" for k, v in sorted(result.per_split.items()))
    console.print(
        f"[bold green]built[/] {result.out}: {result.samples} samples, "
        f"{result.classes} classes ({per})"
    )
    if result.excluded:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(result.excluded.items()))
        console.print(f"excluded: {reasons} (see excluded.parquet)", highlight=False)
    if result.reused_images:
        console.print(f"resumed: {result.reused_images} images reused from the cache")
    console.print(f"top hash {result.top_hash}")


def verify_command(directory: Path = typer.Argument(..., help="A dataset folder.")) -> None:
    """Check every file of a dataset against its oiforge.lock."""
    from oiforge.build import verify_dataset

    report = verify_dataset(directory)
    if report.ok:
        console.print(f"[bold green]ok[/] {directory}: {report.checked} files match the lock")
        return
    hidden = set(report.hidden_extra)
    for label, items in (
        ("missing", report.missing),
        ("changed", report.changed),
        ("extra", report.extra),
    ):
        for item in items[:20]:
            note = " (hidden, but loaders such as ImageFolder read it)" if item in hidden else ""
            err_console.print(f"[red]{label}[/] {item}{note}", highlight=False)
        if len(items) > 20:
            err_console.print(f"… and {len(items) - 20} more {label}")
    raise typer.Exit(1)


def publish_command(
    directory: Path = typer.Argument(..., help="A built dataset folder."),
    url: str = typer.Argument(..., help="s3://bucket/name@version (or any fsspec URL/path)."),
    endpoint_url: str | None = typer.Option(
        None, "--endpoint-url", help="S3 API endpoint (or $OIFORGE_S3_ENDPOINT_URL)."
    ),
) -> None:
    """Upload a verified dataset; only files missing remotely are sent."""
    from oiforge.build import publish

    with progress_bar() as bar:
        task = bar.add_task("publish", total=None)
        res = publish(
            directory, url, endpoint_url, lambda d, t: bar.update(task, completed=d, total=t)
        )
    console.print(
        f"[bold green]published[/] {res.url}: {res.transferred} sent ({res.bytes} bytes), "
        f"{res.skipped} already there"
    )


def pull_command(
    url: str = typer.Argument(..., help="s3://bucket/name@version (or any fsspec URL/path)."),
    directory: Path = typer.Argument(..., help="Where to put the dataset."),
    endpoint_url: str | None = typer.Option(
        None, "--endpoint-url", help="S3 API endpoint (or $OIFORGE_S3_ENDPOINT_URL)."
    ),
) -> None:
    """Download a published dataset, verifying every file's sha256 against its lock."""
    from oiforge.build import pull

    with progress_bar() as bar:
        task = bar.add_task("pull", total=None)
        res = pull(
            url, directory, endpoint_url, lambda d, t: bar.update(task, completed=d, total=t)
        )
    console.print(
        f"[bold green]pulled[/] {res.url} → {directory}: {res.transferred} downloaded, "
        f"{res.skipped} reused"
    )
