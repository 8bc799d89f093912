"""A deterministic model with no weights: fast, exact and predictable, for tests and plumbing.

Text: each word hashes to a fixed random direction; a text is the sum of its words.
Images: `semantic` is the name of the image's dominant colour embedded as text (so the query
"red" finds red images), `visual` is a small colour thumbnail (so near-duplicates find each other).
Audio, in 2 s windows every 1 s: `semantic` is the word for the window's pitch ("low", "middle",
"high", or "silence") embedded as text, `acoustic` its energy in 16 log-spaced bands.
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
    SEMANTIC,
    VISUAL,
    AudioEmbedding,
    AudioEncoder,
    Encoder,
    ModelSpec,
    l2_normalise,
)

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
_WINDOW = 2.0
_HOP = 1.0
_BANDS = np.geomspace(50, _AUDIO_RATE / 2, 17)


def pitch_word(window: np.ndarray) -> str:
    """What the hash model "hears" in a window: its dominant pitch as a word."""
    if len(window) == 0 or float(np.sqrt(np.mean(window**2))) < 1e-3:
        return "silence"
    spectrum = np.abs(np.fft.rfft(window))
    peak = float(np.fft.rfftfreq(len(window), 1 / _AUDIO_RATE)[int(np.argmax(spectrum))])
    return "low" if peak < 300 else "middle" if peak < 1500 else "high"


class HashAudioEncoder(AudioEncoder):
    sample_rate = _AUDIO_RATE

    def __init__(self, owner: HashEncoder) -> None:
        self._owner = owner

    @property
    def spaces(self) -> dict[str, int]:
        return {SEMANTIC: self._owner.dim, ACOUSTIC: len(_BANDS) - 1}

    def embed_recording(self, blocks: Iterable[np.ndarray]) -> AudioEmbedding:
        signal = np.concatenate([np.asarray(b, np.float32) for b in blocks] or [np.zeros(0, np.float32)])
        size, hop = int(_WINDOW * _AUDIO_RATE), int(_HOP * _AUDIO_RATE)
        starts = range(0, max(1, len(signal) - size + hop), hop)
        spans, words, bands = [], [], []
        for start in starts:
            window = signal[start : start + size]
            spans.append((start / _AUDIO_RATE, min(len(signal), start + size) / _AUDIO_RATE))
            words.append(pitch_word(window))
            spectrum = np.abs(np.fft.rfft(window, n=size)) ** 2
            freqs = np.fft.rfftfreq(size, 1 / _AUDIO_RATE)
            bands.append([spectrum[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(_BANDS, _BANDS[1:])])
        acoustic = l2_normalise(np.log1p(np.asarray(bands, np.float32)))
        counts = {w: words.count(w) / len(words) for w in dict.fromkeys(words)}
        return AudioEmbedding(
            vectors={SEMANTIC: self._owner.embed_texts(words), ACOUSTIC: acoustic},
            spans={SEMANTIC: spans, ACOUSTIC: spans},
            tags=sorted(counts.items(), key=lambda kv: -kv[1]),
        )
