"""Photo files to printable pixels, and the choice of the printed photos of each letter.

Every failure is a value (``LoadedPhoto.error``, ``Dropped.reason``), never an exception: a
missing, broken, hostile or changed file drops that photo (a missing one is named with its
download journal status, ``failed to download: http_410``). A photo is cropped to a square
(around its box in box mode), except under a no-derivatives licence: then it is printed whole,
fitted inside its cell.

Candidates are tried in plan order; a photo is dropped when it is too small, already in the
book, or nearly duplicates one that is. Among the rest, large and sharp photos win; the grid
(3x3, 4x4 or 5x5 up to ``max_photos``) is the largest the photos fill, and among grids the
photos can fill, one whose cells every photo prints at ``min_dpi`` or better.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from oiforge.book.layout import GRID_SIDES, grid_size
from oiforge.book.model import Box, LetterPlan, Photo
from oiforge.contracts import is_image_id, store_path_parts

_CC_CODE_RE = re.compile(r"creativecommons\.org/licenses/([a-z-]+)/", re.I)
MAX_PIXELS = 80_000_000  # refuse decompression bombs
MAX_FILE_BYTES = 64 * 1024 * 1024
BOX_PADDING = 0.08  # fraction of the box side added around a cropped object


@dataclass(frozen=True)
class LoadedPhoto:
    """A photo ready to print (a square crop, or whole for a no-derivatives licence), or why not.

    ``fit``: the photo is printed whole, scaled to fit inside its square cell (never cropped);
    ``cropped``: a part of the photo was cut away to make the square.
    """

    photo: Photo
    image: Image.Image | None = None
    cropped: bool = False
    fit: bool = False
    error: str = ""

    @property
    def is_ok(self) -> bool:
        return self.image is not None

    @property
    def side(self) -> int:
        """Pixels across the cell: the square's side, or a fitted photo's longer side."""
        return max(self.image.size) if self.image is not None else 0

    @property
    def short_side(self) -> int:
        return min(self.image.size) if self.image is not None else 0


def photo_path(photo: Photo, store: Path | None) -> Path | None:
    """Where a photo's bytes are: ``store/<id[:2]>/<id>.jpg`` or the local file."""
    if photo.source == "local":
        return Path(photo.path) if photo.path else None
    if store is None or not is_image_id(photo.image_id):
        return None
    folder, name = store_path_parts(photo.image_id)
    return store / folder / name


def _decode(data: bytes) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        opened = Image.open(io.BytesIO(data))
        if opened.width * opened.height > MAX_PIXELS:
            raise ValueError(f"image too large ({opened.width}x{opened.height})")
        opened.load()
    return ImageOps.exif_transpose(opened).convert("RGB")


def square_region(width: int, height: int, box: Box | None) -> tuple[int, int, int, int]:
    """The square (left, top, right, bottom) to print: around the box, or the centre."""
    side: float
    if box is None:
        side = min(width, height)
        cx, cy = width / 2, height / 2
    else:
        bw = (box.x_max - box.x_min) * width
        bh = (box.y_max - box.y_min) * height
        side = min(max(bw, bh) * (1 + 2 * BOX_PADDING), width, height)
        cx = (box.x_min + box.x_max) / 2 * width
        cy = (box.y_min + box.y_max) / 2 * height
    px = max(1, int(side))
    left = int(min(max(cx - px / 2, 0), width - px))
    top = int(min(max(cy - px / 2, 0), height - px))
    return left, top, left + px, top + px


def _missing(photo: Photo, statuses: Mapping[str, str]) -> str:
    status = statuses.get(photo.image_id)
    if status and status != "ok":
        return f"failed to download: {status}"
    if status == "ok":
        return "downloaded but no longer in the store"
    return "not downloaded (no row in the download journal)"


def _read(photo: Photo, path: Path, statuses: Mapping[str, str]) -> bytes | str:
    """The file's bytes, or why there are none."""
    try:
        if not path.exists() and photo.source == "openimages":
            return _missing(photo, statuses)
        if not path.is_file():  # a FIFO or device would block or never end
            return "not readable: not a regular file"
        if path.stat().st_size > MAX_FILE_BYTES:
            return f"file larger than {MAX_FILE_BYTES} bytes"
        data = path.read_bytes()
    except OSError as exc:
        return f"not readable: {exc.strerror or exc}"
    if photo.sha256 and hashlib.sha256(data).hexdigest() != photo.sha256:
        return "file changed since the plan (sha256 differs)"
    return data


def load_photo(
    photo: Photo, store: Path | None, statuses: Mapping[str, str] | None = None
) -> LoadedPhoto:
    """Read and verify one photo; crop it to a square unless its licence forbids changes.

    ``statuses`` (ImageID -> download journal status) names why a file is missing.
    """
    path = photo_path(photo, store)
    if path is None:
        return LoadedPhoto(photo, error="no file for this photo")
    data = _read(photo, path, statuses or {})
    if isinstance(data, str):
        return LoadedPhoto(photo, error=data)
    try:
        img = _decode(data)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Warning) as exc:
        return LoadedPhoto(photo, error=f"not a readable image: {exc}")
    if is_no_derivatives(photo.license):
        return LoadedPhoto(photo, img, fit=True)
    region = square_region(img.width, img.height, photo.box)
    cropped = region != (0, 0, img.width, img.height)
    return LoadedPhoto(photo, img.crop(region), cropped=cropped)


def is_no_derivatives(url: str) -> bool:
    """A Creative Commons no-derivatives licence (BY-ND, BY-NC-ND): never cropped."""
    return "-nd" in _licence_code(url)


def is_non_commercial(url: str) -> bool:
    """A Creative Commons non-commercial licence (BY-NC, BY-NC-SA, BY-NC-ND)."""
    return "-nc" in _licence_code(url)


def _licence_code(url: str) -> str:
    match = _CC_CODE_RE.search(url or "")
    return f"-{match[1].lower()}-" if match else ""


def grey_thumb(img: Image.Image, side: int = 256) -> Image.Image:
    """A small grey copy for sharpness and hashing (box-reduced first: cheap on big photos)."""
    grey = img.convert("L")
    factor = grey.width // (2 * side)
    if factor >= 2:
        grey = grey.reduce(factor)
    return grey.resize((side, side), Image.Resampling.BILINEAR)


def sharpness(thumb: Image.Image) -> float:
    """Variance of a Laplacian on a grey thumbnail: higher is sharper."""
    grey = np.asarray(thumb.convert("L"), np.float32)
    lap = (
        -4 * grey[1:-1, 1:-1] + grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
    )
    return float(lap.var())


def dhash(thumb: Image.Image) -> int:
    """A 64-bit difference hash, for near-duplicate detection."""
    grey = np.asarray(thumb.convert("L").resize((9, 8), Image.Resampling.BILINEAR), np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def encode_for_print(img: Image.Image, cell_in: float, max_dpi: int, quality: int) -> bytes:
    """JPEG bytes no larger than ``max_dpi`` at ``cell_in`` inches (never upscaled)."""
    target = max(1, round(cell_in * max_dpi))
    longest = max(img.size)
    if longest > target:
        scale = target / longest
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality, optimize=False, progressive=False, subsampling=0)
    return out.getvalue()


def effective_dpi(pixels: int, cell_in: float) -> float:
    """Pixels per inch when ``pixels`` are printed across ``cell_in`` inches."""
    return pixels / cell_in if cell_in > 0 else 0.0


# -- choosing the printed photos ------------------------------------------------------------
MIN_SIDE_PX = 96  # below this a photo is not worth printing at any size
NEAR_DUPLICATE_BITS = 4
SHARP_ENOUGH = 150.0  # Laplacian variance at which sharpness stops adding to the score


NeededPx = Callable[[int], float]  # photos on a page -> pixels a photo needs for min dpi


@dataclass(frozen=True)
class PhotoSource:
    """Where photos are: the store, and the download journal's status per ImageID."""

    store: Path | None
    statuses: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GridChoice:
    """How many photos a letter page may have: at most ``max_photos``, or ``fixed`` per side."""

    max_photos: int
    fixed: int
    needed_px: NeededPx


@dataclass(frozen=True)
class Dropped:
    """A candidate that is not printed, and why."""

    letter: str
    image_id: str
    reason: str


@dataclass(frozen=True)
class PrintedLetter:
    """A letter page: the plan entry and its loaded, cropped photos in print order."""

    entry: LetterPlan
    photos: tuple[LoadedPhoto, ...]


@dataclass
class _Seen:
    ids: set[str] = field(default_factory=set)
    hashes: list[int] = field(default_factory=list)

    def duplicate_of(self, photo: LoadedPhoto, digest: int) -> str:
        if photo.photo.image_id in self.ids:
            return "already printed for another letter"
        if any(hamming(digest, h) <= NEAR_DUPLICATE_BITS for h in self.hashes):
            return "near-duplicate of a printed photo"
        return ""


@dataclass(frozen=True)
class _Candidate:
    loaded: LoadedPhoto
    digest: int
    sharpness: float

    def score(self, needed_px: float) -> float:
        size = min(1.0, self.loaded.side / needed_px) if needed_px > 0 else 1.0
        sharp = min(1.0, self.sharpness / SHARP_ENOUGH)
        return round(0.7 * size + 0.3 * sharp, 6)


def _check(
    loaded: LoadedPhoto, seen: _Seen, local_hashes: list[int]
) -> tuple[str, _Candidate | None]:
    if loaded.error:
        return loaded.error, None
    if loaded.image is None or loaded.short_side < MIN_SIDE_PX:
        return f"too small ({loaded.short_side} px)", None
    thumb = grey_thumb(loaded.image)
    cand = _Candidate(loaded, dhash(thumb), sharpness(thumb))
    reason = seen.duplicate_of(loaded, cand.digest)
    if not reason and any(hamming(cand.digest, h) <= NEAR_DUPLICATE_BITS for h in local_hashes):
        reason = "near-duplicate of a photo of the same letter"
    return reason, cand


def _usable(
    entry: LetterPlan, source: PhotoSource, seen: _Seen, dropped: list[Dropped], limit: int
) -> list[_Candidate]:
    usable: list[_Candidate] = []
    for photo in entry.photos:
        if len(usable) >= limit:  # bounded work per letter: enough good ones to rank
            break
        loaded = load_photo(photo, source.store, source.statuses)
        reason, cand = _check(loaded, seen, [c.digest for c in usable])
        if reason or cand is None:
            dropped.append(Dropped(entry.letter, photo.image_id, reason))
            continue
        usable.append(cand)
    return usable


def _grid(usable: list[_Candidate], max_photos: int, fixed: int, needed_px: NeededPx) -> int:
    """Photos on the page: the fixed grid if filled, else the largest grid the photos fill,
    preferring one whose cells every chosen photo prints at the minimum dpi."""
    if fixed and len(usable) >= fixed * fixed:
        return fixed * fixed
    count = grid_size(len(usable), max_photos)
    for side in GRID_SIDES:  # densest first: smaller cells need fewer pixels per photo
        n = side * side
        if n > max_photos or n < count:
            continue
        sharp = [c for c in usable if c.loaded.side >= needed_px(n)]
        if len(sharp) >= n:
            return n
    return count


def pick_letter(
    entry: LetterPlan,
    source: PhotoSource,
    seen: _Seen,
    dropped: list[Dropped],
    grid: GridChoice,
) -> PrintedLetter | None:
    """The printed photos of one letter (``None`` when none is usable)."""
    usable = _usable(entry, source, seen, dropped, limit=max(2 * grid.max_photos, 4))
    count = _grid(usable, grid.max_photos, grid.fixed, grid.needed_px)
    if count == 0:
        return None
    need = grid.needed_px(count)
    ranked = sorted(range(len(usable)), key=lambda i: (-usable[i].score(need), i))
    chosen = [usable[i] for i in ranked[:count]]
    for i in ranked[count:]:
        dropped.append(Dropped(entry.letter, usable[i].loaded.photo.image_id, "not needed"))
    for cand in chosen:
        seen.ids.add(cand.loaded.photo.image_id)
        seen.hashes.append(cand.digest)
    return PrintedLetter(entry, tuple(c.loaded for c in chosen))


def pick_printed(
    letters: tuple[LetterPlan, ...],
    source: PhotoSource,
    grid: GridChoice,
    on_letter: Callable[[str], None] | None = None,
) -> tuple[list[PrintedLetter], list[Dropped]]:
    """Printed photos for every letter; letters without a usable photo are left out."""
    seen, dropped, printed = _Seen(), list[Dropped](), list[PrintedLetter]()
    for entry in letters:
        page = pick_letter(entry, source, seen, dropped, grid)
        if page is not None:
            printed.append(page)
        else:
            dropped.append(Dropped(entry.letter, "", "no usable photo: letter left out"))
        if on_letter:
            on_letter(entry.letter)
    return printed, dropped


def journal_statuses(store: Path | None) -> dict[str, str]:
    """ImageID -> download status from the store's journal (empty without a journal)."""
    from oiforge.contracts.journal import journal_path, read_journal

    if store is None or not journal_path(store).is_file():
        return {}
    table = read_journal(store).select(["image_id", "status"]).to_pydict()
    return dict(zip(table["image_id"], table["status"], strict=True))
