"""Decoding image bytes into RGB pictures for the encoders, with their size and capture date."""

from __future__ import annotations

import io
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError, features

from mmsearch.errors import MediaError

log = logging.getLogger(__name__)

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_FORMAT_NAMES = {"MPO": "JPEG", "WEBP": "WebP"}  # MPO: the multi-picture JPEGs cameras write
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})

_plugins_lock = threading.Lock()
_plugins_ready = False
_heif_available = False


@dataclass
class DecodedImage:
    """A decoded picture: `image` is RGB and may be reduced; `width`/`height` are the original
    pixel size after EXIF orientation; `taken_at` is the EXIF capture time in ISO 8601."""

    image: Image.Image
    width: int
    height: int
    taken_at: str | None = None


def decode_image(
    data: bytes, *, path: str, max_pixels: int, min_side: int | None = None
) -> DecodedImage:
    """Decode an image file's bytes fully, whatever its extension claims.

    The format is sniffed from the content. The pixel count is checked against `max_pixels`
    from the header, before any pixel is decoded. The first frame of an animation is used,
    EXIF orientation is applied, transparency is composited onto white, and any colour mode
    (palette, CMYK, 16-bit, float) ends up 8-bit RGB. Safe to call from several threads.

    Args:
        data: The whole file's bytes.
        path: The file's path, for error messages (and the extension in them) only.
        max_pixels: Images with more pixels than this are refused as decompression bombs.
        min_side: If given, the image may come back reduced, keeping its shorter side at
            least `min_side` (JPEGs then decode at 1/2 to 1/8 scale, which is much faster).

    Returns:
        The RGB image (loaded, independent of `data`) and its metadata.

    Raises:
        MediaError: The bytes are empty, not an image, truncated or corrupt, too large, or
            of a format whose decoder is not installed.
    """
    if not data:
        raise MediaError(path, "empty file")
    _ensure_plugins()
    try:
        src = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise MediaError(path, _unidentified_reason(data, path)) from None
    except Image.DecompressionBombError as exc:  # only if someone restored PIL's global limit
        raise MediaError(path, f"image too large ({exc})") from None
    except MemoryError:
        raise MediaError(path, "not enough memory to read this image") from None
    except Exception as exc:  # a plugin choking on a broken header: bad input, not a bug here
        log.debug("opening %s failed: %r", path, exc)
        raise MediaError(path, f"truncated or corrupt {_sniff(data) or 'image'}") from None

    with src:
        fmt = _FORMAT_NAMES.get(src.format or "", src.format or "image")
        width, height = src.size
        if width <= 0 or height <= 0:
            raise MediaError(path, f"corrupt {fmt}: it claims a size of {width}x{height}")
        if width * height > max_pixels:
            raise MediaError(
                path,
                f"image has {width * height} pixels, above the {max_pixels} limit"
                " (decompression bomb?)",
            )
        if min_side and min_side > 0:
            # JPEG only (a no-op elsewhere): libjpeg decodes straight to a 1/2..1/8 scale.
            src.draft("RGB", (min_side, min_side))
        try:
            src.load()
        except MemoryError:
            raise MediaError(path, "not enough memory to decode this image") from None
        except Exception as exc:
            log.debug("decoding %s failed: %s", path, exc)
            raise MediaError(path, f"truncated or corrupt {fmt}") from None

        taken_at, orientation = _read_exif(src, path)
        try:
            upright = ImageOps.exif_transpose(src)  # always a new image, even if not rotated
        except Exception as exc:  # broken EXIF must not cost the picture
            log.debug("ignoring the EXIF orientation of %s: %s", path, exc)
            upright, orientation = src.copy(), 1
        if orientation in (5, 6, 7, 8):  # turned by 90 degrees
            width, height = height, width
        try:
            rgb = _to_rgb(upright)
        except MemoryError:
            raise MediaError(path, "not enough memory to decode this image") from None
        except ValueError as exc:
            raise MediaError(path, f"unsupported colour mode {upright.mode} ({exc})") from None

    if min_side and min_side > 0:
        # Other formats (and JPEGs beyond 1/8) shrink here: a box filter, cheap and clean.
        factor = min(rgb.size) // min_side
        if factor >= 2:
            rgb = rgb.reduce(factor)
    return DecodedImage(image=rgb, width=width, height=height, taken_at=taken_at)


def _ensure_plugins() -> None:
    """Register optional decoders once, before the first decode, whichever thread gets here."""
    global _plugins_ready, _heif_available
    if _plugins_ready:
        return
    with _plugins_lock:
        if _plugins_ready:
            return
        # mmsearch checks every image against its own `max_pixels` (a user setting) before
        # decoding. PIL's process-wide check would warn from 89 Mpx and refuse at 179 Mpx,
        # second-guessing that setting, and changing it per call is not thread-safe.
        Image.MAX_IMAGE_PIXELS = None
        try:
            from pillow_heif import register_heif_opener

            register_heif_opener()
            _heif_available = True
        except ImportError:
            log.info("pillow-heif is not installed: HEIC/HEIF images will be skipped")
        if not features.check("avif"):
            try:  # pillow-heif before 1.0 could read AVIF; Pillow does since 11.3
                from pillow_heif import register_avif_opener  # type: ignore[attr-defined]

                register_avif_opener()
            except ImportError:
                log.info("this Pillow cannot read AVIF: AVIF images will be skipped")
        # Load every plugin now: lazy plugin registration while threads open images would race.
        Image.init()
        _plugins_ready = True


def _sniff(data: bytes) -> str | None:
    """The format the first bytes announce, for messages when PIL cannot open the file."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WebP"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if data[4:8] == b"ftyp":
        box_end = int.from_bytes(data[:4], "big")
        brands = {data[i : i + 4] for i in range(8, min(box_end, 64), 4)}
        if brands & _AVIF_BRANDS:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIF"
    return None


def _unidentified_reason(data: bytes, path: str) -> str:
    sniffed = _sniff(data)
    if sniffed == "HEIF" and not _heif_available:
        return "HEIC/HEIF image, but pillow-heif is not installed: install pillow-heif to index it"
    if sniffed == "AVIF" and not features.check("avif"):
        return "AVIF image, but this Pillow cannot read AVIF: install Pillow 11.3 or newer"
    if sniffed:
        return f"truncated or corrupt {sniffed}"
    ext = os.path.splitext(path)[1]
    return f"not an image although named {ext}" if ext else "not an image"


def _read_exif(im: Image.Image, path: str) -> tuple[str | None, int]:
    """The capture time (see `_taken_at`) and the EXIF orientation (1 when absent)."""
    try:
        exif = im.getexif()
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        orientation = exif.get(ExifTags.Base.Orientation, 1)
        pairs = (
            (sub.get(ExifTags.Base.DateTimeOriginal), sub.get(ExifTags.Base.OffsetTimeOriginal)),
            (exif.get(ExifTags.Base.DateTime), sub.get(ExifTags.Base.OffsetTime)),
        )
    except Exception as exc:  # corrupt EXIF is common; the date is a nicety
        log.debug("unreadable EXIF in %s: %s", path, exc)
        return None, 1
    return _taken_at(pairs), orientation


def _taken_at(pairs: tuple[tuple[object, object], ...]) -> str | None:
    """The first valid (timestamp, UTC offset) pair of EXIF strings as ISO 8601."""
    for stamp, offset in pairs:
        if not isinstance(stamp, str):
            continue
        try:
            # Cameras that do not know the time write "0000:00:00 00:00:00" or blanks.
            when = datetime.strptime(stamp.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
        except ValueError:
            continue
        text = when.isoformat()
        if isinstance(offset, str) and len(offset.strip("\x00 ")) == 6:
            offset = offset.strip("\x00 ")
            if offset[0] in "+-" and offset[3] == ":":
                text += offset
        return text
    return None


def _to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: transparency onto white, high bit depths scaled down."""
    if im.mode == "RGB" and "transparency" not in im.info:
        return im
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGB", im.size, (255, 255, 255))
        white.paste(rgba, mask=rgba)
        return white
    if im.mode in _SIXTEEN_BIT_MODES:
        grey = np.asarray(im).astype(np.float32) / 257.0
        return Image.fromarray(grey.round().astype(np.uint8)).convert("RGB")
    if im.mode in ("I", "F"):
        # 32-bit int or float samples have no fixed range: stretch what is there to 0..255.
        values = np.nan_to_num(np.asarray(im, dtype=np.float64))
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0.0
        return Image.fromarray(scaled.round().astype(np.uint8)).convert("RGB")
    return im.convert("RGB")  # P, L, 1, CMYK, YCbCr, ...
