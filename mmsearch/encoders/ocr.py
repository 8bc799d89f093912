"""Reading text in images (OCR) with RapidOCR's PP-OCRv4 ONNX models (Apache-2.0; they ship
inside the `rapidocr-onnxruntime` wheel, so this works offline).

Text detection is the costly part and most photos hold no text, so each image is first looked at
small (longest side `GLANCE_SIDE`, on the copy already decoded for the image model): only when
that finds a text region is the image decoded again at full detail (`detail`) and read. Plain
photos thus pay one small detector pass and no larger decode. Lines read with low confidence are
dropped: on photos without text the recogniser otherwise "reads" bricks and foliage.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmsearch.errors import ModelUnavailableError

log = logging.getLogger(__name__)

GLANCE_SIDE = 256
"""Longest side of the cheap first look: the text detector's probability map only. At 256 it
found every one of 100 signs pasted on imagenet_sample photos and passed 4 % of 200 plain ones
(at 192 and 224 it missed 1-2 signs); its cost grows with the pixels (256 costs 0.64x of 320)."""
GLANCE_MIN_PROBABILITY = 0.5
"""A pixel the detector is this sure is text makes the image worth reading (signs: 1.0 at 256;
plain photos mostly 0)."""
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

    def _engine(self) -> Any:
        engine = getattr(self._local, "engine", None)
        if engine is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:
                raise ModelUnavailableError(
                    "Reading text in images needs the rapidocr-onnxruntime package: "
                    "`pip install rapidocr-onnxruntime`, or turn read_text_in_images off."
                ) from exc
            # One thread per engine: the reader threads already keep every core busy. Given as
            # the global keys: RapidOCR 1.3 copies its global thread counts over the
            # per-model ones (`det_intra_op_num_threads` and the like are silently lost), and
            # left at its default every session ran 2 spinning threads, which cost the glance
            # twice the CPU (22 ms against 11 ms per photo, measured side by side).
            # "max": detection never enlarges an image (its default scales the SHORT side up
            # to 736 px, which made every read of a small photo cost seconds). Images reach it
            # already shrunk to GLANCE_SIDE or READ_SIDE, so one engine serves both.
            engine = self._local.engine = RapidOCR(
                det_limit_side_len=READ_SIDE,
                det_limit_type="max",
                intra_op_num_threads=1,
                inter_op_num_threads=1,
            )
        return engine

    def has_text(self, image: np.ndarray) -> bool:
        """The cheap check: is any pixel of a small copy of the image surely text? The
        detector's probability map alone: no boxes, no recognition."""
        detector = self._engine().text_det
        small = np.ascontiguousarray(_shrunk(image, GLANCE_SIDE)[:, :, ::-1])  # OpenCV's order
        tensor = detector.get_preprocess(max(small.shape[:2]))(small)
        if tensor is None:
            return False
        probability = detector.infer(tensor)[0]
        return bool(probability.max() >= GLANCE_MIN_PROBABILITY)

    def read(self, picture: Any, detail: Callable[[], Any] | None = None) -> tuple[ReadWord, ...]:
        """The lines of text in an image (a PIL image, or RGB H x W x 3 uint8), top to bottom.

        `detail`, when given, returns the same image with more pixels (its shorter side at
        least READ_SIDE where the file has them); it is called only when the glance at
        `picture` finds text, so `picture` may be the small copy made for the image model."""
        image = _rgb(picture)
        if image.ndim != 3 or min(image.shape[:2]) < 8 or not self.has_text(image):
            return ()
        if detail is not None:
            image = _rgb(detail())
        image = _shrunk(image, READ_SIDE)
        # RapidOCR takes OpenCV's channel order.
        found, _ = self._engine()(np.ascontiguousarray(image[:, :, ::-1]), use_cls=False)
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


def _rgb(picture: Any) -> np.ndarray:
    return picture if isinstance(picture, np.ndarray) else np.asarray(picture.convert("RGB"))


def _shrunk(image: np.ndarray, side: int) -> np.ndarray:
    """`image` with its longest side at most `side` pixels."""
    height, width = image.shape[:2]
    if max(height, width) <= side:
        return image
    from PIL import Image

    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
