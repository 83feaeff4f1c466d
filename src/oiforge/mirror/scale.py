"""Full-size-shaped metadata for benchmarks: millions of rows in the official formats, no images.

``make_scaled(root, box_rows=14_600_000)`` writes, under ``root/openimages/``, the v7 train
files at real proportions (per box row: ~0.62 image rows, ~4.1 human label rows, like the
real 14.6M boxes / 9M images / 60M labels) plus the real class lists, with DuckDB ``COPY``
(multi-threaded, streaming). Label and box files are sorted by ImageID, the image file is
not. Values come from a hash of the row number and the seed: same seed, same DuckDB, same
bytes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from oiforge.errors import InvalidInputError
from oiforge.mirror.metadata import REAL_COPIES
from oiforge.paths import package_data

IMAGES_PER_BOX = 9.0 / 14.6
LABELS_PER_BOX = 60.0 / 14.6
BOXES_PER_IMAGE = 8
LABELS_PER_IMAGE = 7
IMAGES = "2018_04/train/train-images-boxable-with-rotation.csv"
BOXES = "v6/oidv6-train-annotations-bbox.csv"
LABELS = "v7/oidv7-train-annotations-human-imagelabels.csv"


def _u(_seed: int, k: int) -> str:
    """A uniform [0, 1) per row: 16 bits of the row's hash h{k // 4} (see :func:`_hashed`)."""
    return f"(((h{k // 4} >> {16 * (k % 4)}) & 65535) / 65536.0)"


def _f6(expr: str) -> str:
    """SQL for a number with 6 decimals (``format`` is ~3x faster than ``printf``)."""
    return "format('{:.6f}', " + expr + ")"


def _hex(expr: str, width: int) -> str:
    return "format('{:0" + str(width) + "x}', " + expr + ")"


def _hashed(rows: int, seed: int, count: int) -> str:
    """Rows ``i`` with ``count`` 64-bit hashes each: 4 uniforms per hash, few hash calls."""
    cols = ", ".join(f"hash(i + 1, {seed} + 1, {n} + 1) AS h{n}" for n in range(count))
    return f"(SELECT i, {cols} FROM range({rows}) t(i))"


def _image_id(index_sql: str) -> str:
    # Increasing in the index (stride + jitter below the stride), so files written in index
    # order are sorted by ImageID; $stride spreads the ids over the 63-bit range.
    idx = f"({index_sql})::HUGEINT"
    return _hex(f"({idx} * $stride + hash({idx} + 7) % $stride)::BIGINT", 16)


def _boxes_sql(rows: int, seed: int, mids: str) -> str:
    u = [_u(seed, k) for k in range(12)]
    x0, y0 = f"({u[0]} * 0.6)", f"({u[1]} * 0.6)"
    x1, y1 = f"({x0} + 0.05 + {u[2]} * 0.35)", f"({y0} + 0.05 + {u[3]} * 0.35)"
    w, h = f"({x1} - {x0})", f"({y1} - {y0})"
    clicks = [x0, f"({x0} + {w} * {u[4]})", x1, f"({x1} - {w} * {u[5]})",
              f"({y0} + {h} * {u[6]})", y0, f"({y1} - {h} * {u[7]})", y1]  # fmt: skip
    names = ("XClick1X", "XClick2X", "XClick3X", "XClick4X",
             "XClick1Y", "XClick2Y", "XClick3Y", "XClick4Y")  # fmt: skip
    click_cols = ", ".join(
        f"CASE WHEN {u[8]} < 0.9 THEN {_f6(c)} ELSE '-1' END AS {n}"
        for c, n in zip(clicks, names, strict=True)
    )
    flags = ", ".join(
        f"CASE WHEN {_u(seed, 9 + k)} < {p} THEN '1' ELSE '0' END AS {n}"
        for k, (n, p) in enumerate(
            (("IsOccluded", 0.66), ("IsTruncated", 0.25), ("IsGroupOf", 0.06),
             ("IsDepiction", 0.05), ("IsInside", 0.002))
        )
    )  # fmt: skip
    return f"""
        SELECT {_image_id(f"i // {BOXES_PER_IMAGE}")} AS ImageID,
            CASE WHEN {u[8]} < 0.9 THEN 'xclick' ELSE 'activemil' END AS Source,
            {mids}[1 + (h3 % len({mids}))::BIGINT] AS LabelName, '1' AS Confidence,
            {_f6(x0)} AS XMin, {_f6(x1)} AS XMax,
            {_f6(y0)} AS YMin, {_f6(y1)} AS YMax, {flags}, {click_cols}
        FROM {_hashed(rows, seed, 4)}"""


def _labels_sql(rows: int, seed: int, mids: str) -> str:
    return f"""
        SELECT {_image_id(f"i // {LABELS_PER_IMAGE}")} AS ImageID,
            CASE WHEN {_u(seed, 4)} < 0.96 THEN 'verification'
                 ELSE 'crowdsource-verification' END AS Source,
            {mids}[1 + (h0 % len({mids}))::BIGINT] AS LabelName,
            CASE WHEN {_u(seed, 5)} < 0.74 THEN '1' ELSE '0' END AS Confidence
        FROM {_hashed(rows, seed, 2)}"""


def _images_sql(rows: int, seed: int) -> str:
    # Row r holds image (r * step + seed) mod rows: a permutation, so the file is unsorted
    # without a sort.
    step = next(k for k in range(7_919, 10**9) if math.gcd(k, rows) == 1)
    photo = "(100000000 + h0 % 90000000000)"
    secret = _hex("(h1 % 1099511627776)::BIGINT", 10)
    folder = "(1 + (h1 >> 44) % 9) || '/' || (1 + (h0 >> 40) % 8000)"
    path = f"{folder} || '/' || {photo} || '_' || {secret}"
    return f"""
        SELECT {_image_id("i")} AS ImageID, 'train' AS Subset,
            'https://c1.staticflickr.com/' || {path} || '_o.jpg' AS OriginalURL,
            'https://www.flickr.com/photos/user' || (i % 100000) || '/' || {photo}
                AS OriginalLandingURL,
            'https://creativecommons.org/licenses/by/2.0/' AS License,
            'https://www.flickr.com/people/user' || (i % 100000) || '/' AS AuthorProfileURL,
            CASE WHEN i % 7 = 0 THEN 'Smith, John' ELSE 'Zoë O''Neill' END AS Author,
            CASE WHEN i % 5 = 0 THEN 'The "best" day, ever' ELSE 'IMG_' || (i % 10000) END
                AS Title,
            (50000 + (h0 >> 20) % 5000000)::VARCHAR AS OriginalSize,
            to_base64(unhex(md5(i::VARCHAR || '-{seed}'))) AS OriginalMD5,
            'https://c1.staticflickr.com/' || {path} || '_z.jpg' AS Thumbnail300KURL,
            CASE WHEN i % 50 = 0 THEN NULL ELSE '0.0' END AS Rotation
        FROM (SELECT i, hash(i + 1, {seed} + 1, 1) AS h0, hash(i + 1, {seed} + 1, 2) AS h1 FROM
              (SELECT (r * {step} + {seed}) % {rows} AS i FROM range({rows}) t(r)))"""


def _mid_list(name: str) -> str:
    lines = package_data("openimages", name).read_text(encoding="utf-8").splitlines()
    mids = [line.split(",", 1)[0] for line in lines[1:] if line.startswith("/m/")]
    return "[" + ", ".join(f"'{m}'" for m in mids) + "]"


def make_scaled(
    root: str | os.PathLike[str], seed: int = 0, box_rows: int = 14_600_000
) -> dict[str, tuple[int, int]]:
    """Write the big files; returns ``{relpath: (rows, bytes)}``."""
    import duckdb

    if box_rows < 1:
        raise InvalidInputError(f"--scale must be a positive number of box rows, got {box_rows}")
    meta = Path(root) / "openimages"
    for relpath, name in REAL_COPIES.items():
        (meta / relpath).parent.mkdir(parents=True, exist_ok=True)
        (meta / relpath).write_bytes(package_data("openimages", name).read_bytes())
    image_rows = round(box_rows * IMAGES_PER_BOX)
    plan = {
        BOXES: (box_rows, _boxes_sql(box_rows, seed, "$boxable")),
        LABELS: (n := round(box_rows * LABELS_PER_BOX), _labels_sql(n, seed, "$all")),
        IMAGES: (image_rows, _images_sql(image_rows, seed)),
    }
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = false")
    out: dict[str, tuple[int, int]] = {}
    for relpath, (rows, sql) in plan.items():
        target = meta / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        sql = sql.replace("$boxable", _mid_list("oidv7-class-descriptions-boxable.csv"))
        sql = sql.replace("$all", _mid_list("oidv7-class-descriptions.csv"))
        sql = sql.replace("$stride", str(2**63 // (image_rows + 1)))
        con.execute(f"COPY ({sql}) TO '{tmp}' (HEADER, DELIMITER ',', QUOTE '\"')")
        tmp.replace(target)
        out[relpath] = (rows, target.stat().st_size)
    return out
