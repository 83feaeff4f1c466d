"""The per-image worker: decode once, check, hash, cut and encode every sample.

Runs in a process pool. Sample JPEGs go to the build cache and each batch's records to the
process's journal (see ``cache``), so the parent only receives the small ``ImageRecord``s; a
rerun reuses records whose files still hash right. Box checks and crop rectangles are pure
functions of numbers (property-tested).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np

from oiforge.build.cache import append_records, sample_path, sample_writer, write_cache_file
from oiforge.build.decode import (
    Decoded,
    DecodeFailure,
    decode,
    image_flags,
    perceptual_hash,
    thumbnail,
)
from oiforge.build.records import (
    OK,
    Box,
    ImageRecord,
    RenderOptions,
    RenderTask,
    SampleResult,
    task_hash,
)
from oiforge.pixels import Array, encode_jpeg, resize

#: Boxes may overshoot [0, 1] by this much (annotation rounding); more is an error.
BOX_TOLERANCE: Final = 1e-3
ASPECTS: Final = ("keep", "square-pad", "square-crop")

Rect = tuple[int, int, int, int]  # left, top, right, bottom in pixels (right/bottom exclusive)


def box_problem(box: Box) -> str | None:
    """Why a box cannot be used (``None`` when it can)."""
    values = (box.x_min, box.x_max, box.y_min, box.y_max)
    if not all(isinstance(v, float | int) and math.isfinite(v) for v in values):
        return "box_not_finite"
    if box.x_min > box.x_max or box.y_min > box.y_max:
        return "box_inverted"
    if min(values) < -BOX_TOLERANCE or max(values) > 1 + BOX_TOLERANCE:
        return "box_out_of_range"
    if box.x_max - box.x_min <= 0 or box.y_max - box.y_min <= 0:
        return "box_empty"
    return None


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def padded_rect(box: Box, width: int, height: int, padding: float) -> tuple[float, ...]:
    """The box in pixels, grown by ``padding`` × its own side on every side, clamped."""
    bw = (box.x_max - box.x_min) * width
    bh = (box.y_max - box.y_min) * height
    left = _clamp(box.x_min * width - padding * bw, 0, width)
    right = _clamp(box.x_max * width + padding * bw, 0, width)
    top = _clamp(box.y_min * height - padding * bh, 0, height)
    bottom = _clamp(box.y_max * height + padding * bh, 0, height)
    return left, top, right, bottom


def _square_around(rect: tuple[float, ...], width: int, height: int) -> tuple[float, ...]:
    """The square centred on ``rect`` with its longer side, shrunk and shifted into the image."""
    left, top, right, bottom = rect
    side = min(max(right - left, bottom - top), width, height)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0 = _clamp(cx - side / 2, 0, width - side)
    y0 = _clamp(cy - side / 2, 0, height - side)
    return x0, y0, x0 + side, y0 + side


def _to_pixels(rect: tuple[float, ...], width: int, height: int) -> Rect:
    left, top, right, bottom = rect
    x0 = min(math.floor(left), width - 1)
    y0 = min(math.floor(top), height - 1)
    x1 = max(math.ceil(right), x0 + 1)
    y1 = max(math.ceil(bottom), y0 + 1)
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def crop_rect(box: Box, width: int, height: int, padding: float, aspect: str) -> Rect:
    """The pixel rectangle to cut for ``box`` from a ``width`` × ``height`` image."""
    rect = padded_rect(box, width, height, padding)
    if aspect == "square-crop":
        rect = _square_around(rect, width, height)
    return _to_pixels(rect, width, height)


def scale_rect(rect: Rect, sx: float, sy: float, width: int, height: int) -> Rect:
    """``rect`` in an image scaled by (sx, sy) (e.g. a JPEG decoded in draft mode)."""
    left, top, right, bottom = rect
    return _to_pixels((left * sx, top * sy, right * sx, bottom * sy), width, height)


def output_size(width: int, height: int, size: int, aspect: str) -> tuple[int, int]:
    """The exported size: ``size`` square, or the longer side ``size`` with the aspect kept."""
    if aspect != "keep":
        return size, size
    if width >= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size


#: Letterbox colour for ``square-pad`` (the ImageNet mean, so padding looks neutral).
PAD_COLOUR = (124, 116, 104)

Writer = Callable[[Path, bytes], None]


def _full_rect(task_box: Box | None, w: int, h: int, opts: RenderOptions) -> Rect | None:
    if task_box is None:
        return crop_rect(Box(0.0, 1.0, 0.0, 1.0), w, h, 0.0, opts.aspect)
    if box_problem(task_box) is not None:
        return None
    return crop_rect(task_box, w, h, opts.padding, opts.aspect)


def _needed_scale(task: RenderTask, opts: RenderOptions, w: int, h: int) -> float:
    """The smallest decode scale that still gives every crop its full output size."""
    need = 0.0
    for s in task.samples:
        rect = _full_rect(s.box, w, h, opts)
        if rect is None:
            continue
        rw, rh = rect[2] - rect[0], rect[3] - rect[1]
        side = min(rw, rh) if opts.aspect == "square-crop" else max(rw, rh)
        need = max(need, opts.size / max(side, 1))
    return min(1.0, need)


def _resize(img: Array, box: Rect, full: Rect, opts: RenderOptions) -> Array:
    """The ``box`` region of ``img`` at its output size (letterboxed for square-pad).

    The output size comes from ``full``, the same region at full resolution, so it does not
    depend on the scale the JPEG was decoded at."""
    x0, y0, x1, y1 = box
    fw, fh = full[2] - full[0], full[3] - full[1]
    region = img[y0:y1, x0:x1]
    if opts.aspect == "square-pad":
        iw, ih = output_size(fw, fh, opts.size, "keep")
        canvas = np.empty((opts.size, opts.size, 3), np.uint8)
        canvas[:] = PAD_COLOUR
        top, left = (opts.size - ih) // 2, (opts.size - iw) // 2
        canvas[top : top + ih, left : left + iw] = resize(region, iw, ih)
        return canvas
    return resize(region, *output_size(fw, fh, opts.size, opts.aspect))


def _render_sample(
    dec: Decoded, rect: Rect, opts: RenderOptions, write: Writer, path: Path
) -> tuple[str, int, int, str, int]:
    """Cut, resize, encode and store one sample: (sha256, width, height, crop note, bytes);
    the hash and size are of the bytes written (the build trusts them: ``pool.is_reusable``)."""
    img = dec.image
    h, w = img.shape[:2]
    small = scale_rect(rect, w / dec.full_width, h / dec.full_height, w, h)
    out = _resize(img, small, rect, opts)
    data = encode_jpeg(out, opts.jpeg_quality)
    write(path, data)
    x0, y0, x1, y1 = rect
    note = f"crop {x0},{y0},{x1},{y1} of {dec.full_width}x{dec.full_height}"
    if dec.turn:
        note += f" ({dec.turn})"
    oh, ow = out.shape[:2]
    note += f"; {opts.aspect} -> {ow}x{oh}"
    return hashlib.sha256(data).hexdigest(), ow, oh, note, len(data)


def _render_all(
    task: RenderTask, dec: Decoded, opts: RenderOptions, cache: Path, write: Writer
) -> list[SampleResult]:
    results: list[SampleResult] = []
    for s in task.samples:
        res = SampleResult(s.key, s.label_mid, s.box_index, OK)
        if s.box is not None and (problem := box_problem(s.box)) is not None:
            res.status = problem
        else:
            rect = _full_rect(s.box, dec.full_width, dec.full_height, opts)
            assert rect is not None
            if min(rect[2] - rect[0], rect[3] - rect[1]) < opts.min_crop_side:
                res.status = "crop_too_small"
            else:
                res.sha256, res.width, res.height, res.crop, res.size = _render_sample(
                    dec, rect, opts, write, sample_path(cache, s.key)
                )
        results.append(res)
    return results


def _failed(task: RenderTask, status: str, record: ImageRecord) -> ImageRecord:
    record.status = status
    record.samples = [SampleResult(s.key, s.label_mid, s.box_index, status) for s in task.samples]
    return record


def process_image(
    task: RenderTask, opts: RenderOptions, cache: Path, write: Writer = write_cache_file
) -> ImageRecord:
    """Turn one store image into its samples; every failure is a status on the record.

    Sample files go through ``write`` (the caller makes sure they are written before it
    journals the record)."""
    record = ImageRecord(task.image_id, OK, task_hash=task_hash(task))
    try:
        data = Path(task.path).read_bytes()
    except FileNotFoundError:
        return _failed(task, "missing", record)
    except OSError as exc:
        return _failed(task, f"unreadable: {exc.strerror}", record)
    record.source_sha256 = hashlib.sha256(data).hexdigest()
    try:
        dec = decode(
            data, opts.max_pixels, task.rotation, lambda w, h: _needed_scale(task, opts, w, h)
        )
    except DecodeFailure as exc:
        return _failed(task, str(exc), record)
    record.width, record.height = dec.full_width, dec.full_height
    if min(dec.full_width, dec.full_height) < opts.min_image_side:
        return _failed(task, "image_too_small", record)
    thumb = thumbnail(dec.image, 32)
    record.flags = image_flags(thumb)
    record.phash = perceptual_hash(thumb)
    record.samples = _render_all(task, dec, opts, cache, write)
    return record


def run_batch(
    tasks: list[RenderTask], opts: RenderOptions, cache: str, run: str = ""
) -> list[ImageRecord]:
    """Pool entry point: a batch of images (fewer round trips, one journal append); ``run``
    tags the records with the render run that wrote them."""
    folder, writer = Path(cache), sample_writer()
    records = [process_image(t, opts, folder, writer.write) for t in tasks]
    for record in records:
        record.run = run
    writer.flush()  # samples written (and the last batch's journal synced) before the journal
    append_records(folder, records, writer)  # says they are; synced while the next one renders
    return records
