"""Reading text in images (OCR) with RapidOCR's PP-OCRv4 ONNX models (Apache-2.0; they ship
inside the `rapidocr-onnxruntime` wheel, so this works offline).

Text detection is the costly part and most photos hold no text, so each image is first looked at
small (longest side `_GLANCE_SIDE`): only when that finds a text region is it read at full
detail. Lines read with low confidence are dropped: on photos without text the recogniser
otherwise "reads" bricks and foliage.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmsearch.errors import ModelUnavailableError

log = logging.getLogger(__name__)

_GLANCE_SIDE = 320
"""Longest side of the cheap first look (text detection only)."""
READ_SIDE = 960
"""Longest side of the full read: small text on a photo of a street needs the detail."""
READ_TEXT = "read-text"
"""The `source` of a `semantic` vector made from text read in an image."""
MIN_CONFIDENCE = 0.6
"""Lines the recogniser is less sure of are noise far more often than text."""


@dataclass(frozen=True)
class ReadWord:
    """A line of text read in an image: its box as fractions of the image's width and height
    (left, top, right, bottom) and the reader's confidence (0-1)."""

    text: str
    box: tuple[float, float, float, float]
    confidence: float


class TextReader:
    """Reads the text in decoded RGB images. Safe to share between threads (each thread gets
    its own engine: onnxruntime sessions are, RapidOCR's pre-processing state is not)."""

    def __init__(self, min_confidence: float = MIN_CONFIDENCE) -> None:
        self.min_confidence = min_confidence
        self._local = threading.local()

    def _engines(self) -> tuple[Any, Any]:
        engines = getattr(self._local, "engines", None)
        if engines is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:
                raise ModelUnavailableError(
                    "Reading text in images needs the rapidocr-onnxruntime package: "
                    "`pip install rapidocr-onnxruntime`, or turn read_text_in_images off."
                ) from exc
            # One thread per engine: the reader threads already keep every core busy.
            threads = {
                f"{part}_{name}": 1
                for part in ("det", "rec", "cls")
                for name in ("intra_op_num_threads", "inter_op_num_threads")
            }
            # "max": detection never enlarges an image (its default scales the SHORT side up
            # to 736 px, which made every read of a small photo cost seconds).
            glance = RapidOCR(det_limit_side_len=_GLANCE_SIDE, det_limit_type="max", **threads)
            full = RapidOCR(det_limit_side_len=READ_SIDE, det_limit_type="max", **threads)
            engines = self._local.engines = (glance, full)
        return engines

    def has_text(self, image: np.ndarray) -> bool:
        """The cheap check: does a small copy of the image hold a text region?"""
        glance, _ = self._engines()
        boxes, _ = glance(_shrunk(image, _GLANCE_SIDE), use_det=True, use_cls=False, use_rec=False)
        return bool(boxes is not None and len(boxes))

    def read(self, picture: Any) -> tuple[ReadWord, ...]:
        """The lines of text in an image (a PIL image, or RGB H x W x 3 uint8), top to bottom."""
        image = picture if isinstance(picture, np.ndarray) else np.asarray(picture.convert("RGB"))
        if image.ndim != 3 or min(image.shape[:2]) < 8 or not self.has_text(image):
            return ()
        _, full = self._engines()
        image = _shrunk(image, READ_SIDE)
        # RapidOCR takes OpenCV's channel order.
        found, _ = full(np.ascontiguousarray(image[:, :, ::-1]), use_cls=False)
        height, width = image.shape[:2]
        lines = []
        for points, text, confidence in found or ():
            text = " ".join(str(text).split())
            if not text or float(confidence) < self.min_confidence:
                continue
            xs = [p[0] for p in points]
            ys = [p[1] for p in points]
            box = (
                max(0.0, min(xs) / width), max(0.0, min(ys) / height),
                min(1.0, max(xs) / width), min(1.0, max(ys) / height),
            )  # fmt: skip
            lines.append(ReadWord(text, tuple(round(v, 4) for v in box), round(float(confidence), 4)))  # type: ignore[arg-type]
        return tuple(sorted(lines, key=lambda w: (w.box[1], w.box[0])))


def _shrunk(image: np.ndarray, side: int) -> np.ndarray:
    """`image` with its longest side at most `side` pixels."""
    height, width = image.shape[:2]
    if max(height, width) <= side:
        return image
    from PIL import Image

    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
