"""Images in: fetch one by URL, and turn image bytes into model input (Pillow + numpy only, no
torch on the serving path).

Identical to training's eval path (``oiforge.train.images``): JPEGs are decoded with Pillow's
``draft`` (DCT scaling, never below ``size`` on either side), converted to 8-bit RGB by
:func:`oiforge.pixels.to_rgb` (16-bit scaled, transparency on white, CMYK converted), turned
upright by its EXIF orientation (as a phone photo is shown; build's samples carry none), the
shorter side resized bilinearly (antialiased) to ``max(size, int(size / crop_pct))`` with the
longer side truncated as torchvision does, a centre ``size``×``size`` crop (torchvision's
rounding), scaled to 0..1, normalised with mean/std, channels first. Tiny images (8×8) are
upsampled the same way; very elongated ones (20:1) keep their centre.

URL fetches (:func:`fetch_url`) have a size cap, a total deadline and an address policy: only
``http``/``https`` (also after redirects); by default addresses that are private, loopback,
link-local or reserved are refused, so a public service cannot be used to reach its own
network; ``allow_private=True`` lifts that (tests, trusted networks).
"""

from __future__ import annotations

import functools
import io
import ipaddress
import socket
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from http.client import HTTPMessage
from typing import IO, Final
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
from PIL import Image

from oiforge.contracts.run import Preprocessing
from oiforge.errtext import exception_text
from oiforge.orientation import upright
from oiforge.pixels import to_rgb

#: Default decoded-pixel limit (width × height): a 48-megapixel phone photo passes.
DEFAULT_MAX_PIXELS: Final = 50_000_000
RESAMPLE: Final = Image.Resampling.BILINEAR
#: Formats we decode. Others (EPS runs Ghostscript, PSD, ICO, ...) are refused unread.
IMAGE_FORMATS: Final = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


class ImageRejected(ValueError):
    """Bytes that cannot become a model input; ``code`` says why (a per-item status)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class Decoded:
    """A decoded, upright RGB image and its original (upright) size."""

    image: Image.Image
    width: int
    height: int


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageRejected("invalid_image", "empty image body")
    try:
        with warnings.catch_warnings():
            # our own limit below decides; Pillow's hard error (2x its limit) still applies
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageRejected("image_too_large", exception_text(exc)) from exc
    except Exception as exc:  # untrusted bytes: Pillow's plugins raise many types
        why = exception_text(exc)
        raise ImageRejected("invalid_image", f"not a decodable image ({why})") from exc
    width, height = img.size
    if width * height > max_pixels:
        raise ImageRejected(
            "image_too_large",
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
        )
    if width < 1 or height < 1:
        raise ImageRejected("invalid_image", f"image has no pixels ({width}x{height})")
    return img


def decode_image(
    data: bytes, min_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Decoded:
    """Decode bytes to RGB (JPEG DCT-scaled to >= ``min_side``); refuses bombs, broken files."""
    img = _open(data, max_pixels)
    width, height = img.size
    try:
        if min_side is not None and img.format == "JPEG":
            img.draft("RGB", (min_side, min_side))
        img.load()
        rgb, turned = upright(to_rgb(img), img)
    except Exception as exc:  # untrusted bytes: Pillow's plugins raise many types
        why = exception_text(exc)
        raise ImageRejected("invalid_image", f"image data is broken ({why})") from exc
    return Decoded(rgb, height, width) if turned else Decoded(rgb, width, height)


def resized_size(width: int, height: int, short: int) -> tuple[int, int]:
    """(w, h) with the shorter side ``short`` and the longer side truncated, like torchvision."""
    if width <= height:
        return short, max(1, int(short * height / width))
    return max(1, int(short * width / height)), short


def center_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """The centre crop box (left, top, right, bottom) with torchvision's rounding."""
    left = round((width - size) / 2.0)
    top = round((height - size) / 2.0)
    return left, top, left + size, top + size


@functools.lru_cache(maxsize=8)
def _affine(pre: Preprocessing) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Per-channel (scale, offset), shaped (3, 1, 1): ``(x / 255 - mean) / std`` in one step."""
    mean = np.asarray(pre.mean, dtype=np.float64)
    std = np.asarray(pre.std, dtype=np.float64)
    scale = (1.0 / (255.0 * std)).astype(np.float32).reshape(3, 1, 1)
    offset = (-mean / std).astype(np.float32).reshape(3, 1, 1)
    return scale, offset


def normalise(pixels: npt.NDArray[np.uint8], pre: Preprocessing) -> npt.NDArray[np.float32]:
    """(H, W, 3) uint8 → normalised (3, H, W) float32, written once (no float temporaries).

    Equal to ``((x / 255) - mean) / std`` within float32 rounding (~5e-7).
    """
    scale, offset = _affine(pre)
    out = np.empty((3, *pixels.shape[:2]), dtype=np.float32)
    np.multiply(pixels.transpose(2, 0, 1), scale, out=out, casting="unsafe")
    out += offset
    return out


def to_input(image: Image.Image, pre: Preprocessing) -> npt.NDArray[np.float32]:
    """An RGB image → a normalised (3, size, size) float32 array."""
    width, height = resized_size(image.size[0], image.size[1], max(pre.size, pre.scale_size))
    resized = image.resize((width, height), RESAMPLE)
    cropped = resized.crop(center_box(width, height, pre.size))
    return normalise(np.asarray(cropped), pre)


def preprocess_bytes(
    data: bytes, pre: Preprocessing, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[npt.NDArray[np.float32], Decoded]:
    """Bytes → (model input, decoded image info)."""
    decoded = decode_image(data, pre.size, max_pixels)
    return to_input(decoded.image, pre), decoded


DEFAULT_MAX_BYTES: Final = 20 * 1024 * 1024
DEFAULT_TIMEOUT_S: Final = 10.0
MAX_REDIRECTS: Final = 3
CHUNK: Final = 64 * 1024


class FetchRejected(ValueError):
    """A URL that was not fetched; ``code`` is a per-item status."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_s: float = DEFAULT_TIMEOUT_S
    allow_private: bool = False


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_global and not ip.is_multicast


def check_url(url: str, policy: FetchPolicy) -> None:
    """Refuse non-http(s) URLs and, unless allowed, hosts that resolve to private addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRejected("invalid_url", f"only http(s) URLs with a host are allowed: {url!r}")
    if policy.allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchRejected("url_unreachable", f"cannot resolve {parts.hostname!r}") from exc
    if not all(_is_public(str(info[4][0])) for info in infos):
        raise FetchRejected("url_forbidden", f"{parts.hostname!r} is not a public address")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        check_url(newurl, self.policy)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _read_capped(resp: IO[bytes], policy: FetchPolicy, url: str) -> bytes:
    deadline = time.monotonic() + policy.timeout_s
    chunks: list[bytes] = []
    total = 0
    while chunk := resp.read(CHUNK):
        total += len(chunk)
        if total > policy.max_bytes:
            raise FetchRejected("url_too_large", f"{url} is over {policy.max_bytes} bytes")
        if time.monotonic() > deadline:
            raise FetchRejected("url_timeout", f"{url} took over {policy.timeout_s} s")
        chunks.append(chunk)
    return b"".join(chunks)


def fetch_url(url: str, policy: FetchPolicy) -> bytes:
    """The body of ``url`` (status 200 only), or ``FetchRejected`` with a status code."""
    check_url(url, policy)
    opener = urllib.request.build_opener(_CheckedRedirects(policy))
    request = urllib.request.Request(url, headers={"User-Agent": "oiforge-serve"})
    try:
        with opener.open(request, timeout=policy.timeout_s) as resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > policy.max_bytes:
                raise FetchRejected(
                    "url_too_large", f"{url} is {length} bytes (limit {policy.max_bytes})"
                )
            return _read_capped(resp, policy, url)
    except urllib.error.HTTPError as exc:
        raise FetchRejected("url_http_error", f"{url} answered HTTP {exc.code}") from exc
    except TimeoutError as exc:
        raise FetchRejected("url_timeout", f"{url} took over {policy.timeout_s} s") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if isinstance(exc, FetchRejected):
            raise
        why = exception_text(exc)
        raise FetchRejected("url_unreachable", f"cannot fetch {url}: {why}") from exc
