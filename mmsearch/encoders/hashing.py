"""A deterministic model with no weights: fast, exact and predictable, for tests and plumbing.

Text: each word hashes to a fixed random direction; a text is the sum of its words.
Images: `semantic` is the name of the image's dominant colour embedded as text (so the query
"red" finds red images), `visual` is a small colour thumbnail (so near-duplicates find each other).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from mmsearch.encoders.base import SEMANTIC, VISUAL, Encoder, ModelSpec, l2_normalise

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 40),
    "orange": (245, 140, 20),
    "purple": (130, 40, 160),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "gray": (128, 128, 128),
}
_THUMB = 8
_WORD = re.compile(r"[a-z0-9]+")


class HashEncoder(Encoder):
    def __init__(self, spec: ModelSpec, *, device: str = "cpu", cache_dir: Path | None = None):
        self.spec = spec
        self.dim = int(spec.options.get("dim", 128))
        self._names = list(COLOURS)
        self._palette = np.array([COLOURS[n] for n in self._names], dtype=np.float32)

    @property
    def spaces(self) -> dict[str, int]:
        return {SEMANTIC: self.dim, VISUAL: _THUMB * _THUMB * 3}

    def _word_vector(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                rows[i] += self._word_vector(word)
        return l2_normalise(rows)

    def prepare_image(self, image: Image.Image) -> np.ndarray:
        small = image.convert("RGB").resize((_THUMB, _THUMB), Image.Resampling.BILINEAR)
        return np.asarray(small, dtype=np.float32)

    def embed_images(self, batch: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        pixels = np.stack(batch)  # (n, 8, 8, 3)
        means = pixels.reshape(len(batch), -1, 3).mean(axis=1)
        nearest = np.argmin(((means[:, None, :] - self._palette[None]) ** 2).sum(-1), axis=1)
        semantic = self.embed_texts([self._names[i] for i in nearest])
        flat = pixels.reshape(len(batch), -1)
        visual = l2_normalise(flat / 255.0 - 0.5)  # centred on mid-grey, not per image: keeps brightness
        return {SEMANTIC: semantic, VISUAL: visual}
