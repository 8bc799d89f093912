"""A deterministic model with no weights: fast, exact and predictable, for tests and plumbing.

Text: each word hashes to a fixed random direction; a text is the sum of its words.
Images: `semantic` is the name of the image's dominant colour embedded as text (so the query
"red" finds red images), `visual` is a small colour thumbnail (so near-duplicates find each other).
Audio, in 2 s windows every 1 s: `semantic` is the word for the window's pitch ("low", "middle",
"high", or "silence") embedded as text, `acoustic` its mean energy in 16 log-spaced bands.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from mmsearch.encoders.base import (
    ACOUSTIC,
    AUDIO_BRIDGE,
    SEMANTIC,
    VISUAL,
    AudioEmbedding,
    AudioEncoder,
    Encoder,
    ModelSpec,
    Span,
    l2_normalise,
)
from mmsearch.encoders.windows import WindowPooler

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
        self.audio = HashAudioEncoder(self)

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


_AUDIO_RATE = 8_000
_FRAME = 0.5  # seconds per frame, frames every _FRAME seconds
_WINDOW = 2.0
_HOP = 1.0
_BANDS = np.geomspace(50, _AUDIO_RATE / 2, 17)
_FREQS = np.fft.rfftfreq(int(_FRAME * _AUDIO_RATE), 1 / _AUDIO_RATE)
_WORDS = ("silence", "low", "middle", "high")


_BAND_OF = np.stack([(_FREQS >= lo) & (_FREQS < hi) for lo, hi in zip(_BANDS, _BANDS[1:])], axis=1)


def _frame_features(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame (rows of `frames`): its pitch word (index into `_WORDS`) and band energies."""
    spectrum = np.abs(np.fft.rfft(frames, n=int(_FRAME * _AUDIO_RATE), axis=1)) ** 2
    bands = spectrum @ _BAND_OF.astype(np.float64)
    peak = _FREQS[np.argmax(spectrum, axis=1)]
    words = np.where(peak < 300, 1, np.where(peak < 1500, 2, 3))
    words[np.sqrt(np.mean(frames**2, axis=1)) < 1e-3] = 0
    return words.astype(np.float32), bands.astype(np.float32)


class HashAudioEncoder(AudioEncoder):
    """Streams: frames of 0.5 s pooled into 2 s windows every 1 s (the real models' shape)."""

    sample_rate = _AUDIO_RATE

    def __init__(self, owner: HashEncoder) -> None:
        self._owner = owner
        self._word_vectors = owner.embed_texts(list(_WORDS))

    @property
    def spaces(self) -> dict[str, int]:
        return {SEMANTIC: self._owner.dim, ACOUSTIC: len(_BANDS) - 1}

    def embed_recording(self, blocks: Iterable[np.ndarray]) -> AudioEmbedding:
        pooler = WindowPooler(_WINDOW, _HOP, _FRAME)
        size = int(_FRAME * _AUDIO_RATE)
        windows: list[tuple[Span, list[np.ndarray]]] = []
        carry = np.zeros(0, np.float32)
        offset = 0.0  # seconds before `carry`
        for block in blocks:
            carry = np.concatenate([carry, np.asarray(block, np.float32)])
            whole = len(carry) // size
            if whole:
                windows += self._push(pooler, carry[: whole * size], offset)
                offset += whole * _FRAME
                carry = carry[whole * size :]
        if len(carry):
            windows += self._push(pooler, carry, offset)
            offset += len(carry) / _AUDIO_RATE
        windows += pooler.finish(offset)
        if not windows:
            return AudioEmbedding()
        spans = [span for span, _ in windows]
        words = [int(np.bincount(w.astype(int), minlength=4).argmax()) for _, (w, _) in windows]
        acoustic = l2_normalise(np.log1p(np.stack([b.mean(axis=0) for _, (_, b) in windows])))
        counts = np.bincount(words, minlength=len(_WORDS)) / len(words)
        return AudioEmbedding(
            vectors={SEMANTIC: self._word_vectors[words], ACOUSTIC: acoustic},
            spans={SEMANTIC: spans, ACOUSTIC: spans},
            sources={SEMANTIC: [AUDIO_BRIDGE] * len(spans)},  # as a real model's label bridge
            tags=[(_WORDS[i], float(counts[i])) for i in np.argsort(-counts) if counts[i] > 0],
        )

    @staticmethod
    def _push(pooler: WindowPooler, samples: np.ndarray, offset: float) -> list[tuple[Span, list[np.ndarray]]]:
        size = int(_FRAME * _AUDIO_RATE)
        count = -(-len(samples) // size)
        frames = np.zeros((count, size), np.float32)
        frames.reshape(-1)[: len(samples)] = samples
        words, bands = _frame_features(frames)
        return pooler.push(offset + _FRAME * np.arange(count), words, bands)
