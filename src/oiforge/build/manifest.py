"""The rows of manifest.parquet, excluded.parquet and the attribution files."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from oiforge.atomic import atomic_open, write_text_atomic
from oiforge.build.assemble import ExportSample
from oiforge.build.plan import Exclusion
from oiforge.contracts.dataset import write_manifest as write_dataset_manifest

EXCLUDED_SCHEMA: Final = pa.schema(
    [
        ("image_id", pa.string()),
        ("key", pa.string()),
        ("label_mid", pa.string()),
        ("box_index", pa.int32()),
        ("reason", pa.string()),
    ]
)


def _write_table(path: Path, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_open(path, "wb") as fh:
        pq.write_table(table, fh)


def manifest_row(s: ExportSample, where: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """One manifest row; ``where`` maps format → key → relative path."""
    box = s.box
    wds, parquet = where.get("webdataset", {}), where.get("parquet", {})
    primary = where.get("folders", {}).get(s.key) or (
        f"{wds[s.key]}#{s.key}.jpg" if s.key in wds else f"{parquet.get(s.key, '')}#{s.key}"
    )
    return {
        "sample_path": primary,
        "key": s.key,
        "split": s.split,
        "class_index": s.cls.index,
        "class_name": s.cls.name,
        "class_folder": s.cls.folder,
        "label_mid": s.cls.mid,
        "image_id": s.record.image_id,
        "box_index": s.box_index,
        **{k: (getattr(box, k) if box else None) for k in ("x_min", "x_max", "y_min", "y_max")},
        "crop": s.crop,
        "width": s.width,
        "height": s.height,
        "sha256": s.sha256,
        "source_sha256": s.record.source_sha256,
        "flags": ",".join(s.record.flags),
        "wds_shard": wds.get(s.key, ""),
        "parquet_file": parquet.get(s.key, ""),
        **s.meta.attribution,
    }


def write_manifest(
    root: Path, samples: list[ExportSample], where: Mapping[str, Mapping[str, str]]
) -> list[dict[str, Any]]:
    """``manifest.parquet``: one row per sample, attribution included."""
    rows = [manifest_row(s, where) for s in samples]
    write_dataset_manifest(root, rows)
    return rows


def write_excluded(root: Path, excluded: list[Exclusion]) -> None:
    """``excluded.parquet``: every sample or image left out, with its reason."""
    rows = [
        {
            "image_id": e.image_id,
            "key": e.key,
            "label_mid": e.label_mid,
            "box_index": e.box_index,
            "reason": e.reason,
        }
        for e in excluded
    ]
    _write_table(root / "excluded.parquet", rows, EXCLUDED_SCHEMA)


def _by_image(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    images: dict[str, dict[str, Any]] = {}
    samples: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        samples[r["image_id"]].append(r["sample_path"])
        images.setdefault(
            r["image_id"],
            {
                "image_id": r["image_id"],
                **{
                    k: r[k]
                    for k in (
                        "title",
                        "author",
                        "author_profile_url",
                        "license",
                        "landing_url",
                        "original_url",
                    )
                },
            },
        )
    return [{**images[i], "samples": samples[i]} for i in sorted(images)]


def write_attribution(root: Path, rows: list[dict[str, Any]]) -> None:
    """``attribution.json`` (per source image) and the human-readable ``ATTRIBUTION.md``."""
    images = _by_image(rows)
    doc: dict[str, Any] = {
        "annotations_license": "CC BY 4.0 (Open Images annotations, Google LLC)",
        "images_license_note": "Images are listed by Open Images as CC BY 2.0; check each "
        "image's own licence below before reuse.",
        "images": images,
    }
    write_text_atomic(
        root / "attribution.json", json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    )
    lines = [
        "# Attribution",
        "",
        doc["images_license_note"],
        "",
        "Annotations: " + doc["annotations_license"],
        "",
    ]
    by_licence: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for img in images:
        by_licence[img["license"] or "(licence not given)"].append(img)
    for licence in sorted(by_licence):
        lines += [f"## {licence}", ""]
        for img in by_licence[licence]:
            title = _md(img["title"]) or img["image_id"]
            author = _md(img["author"]) or "unknown author"
            link = f" — <{img['landing_url']}>" if _is_plain_url(img["landing_url"]) else ""
            lines.append(f"- “{title}” by {author} ({img['image_id']}){link}")
        lines.append("")
    write_text_atomic(root / "ATTRIBUTION.md", "\n".join(lines))


def _is_plain_url(url: str) -> bool:
    """An http(s) URL that cannot break out of Markdown's ``<...>`` autolink."""
    return url.startswith(("https://", "http://")) and not any(c in url for c in " <>\n\t`")


def _md(text: str) -> str:
    """Text from the metadata, made inert in Markdown (no links, tags or line breaks)."""
    out = " ".join(str(text).split())
    out = out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]#|":
        out = out.replace(ch, "\\" + ch)
    return out
