"""A query's content words and their vectors, shared by the reranker and the proposers.

Words are embedded one by one in the model's text space (cached per model), in the bridge's
template for image regions (`image_word_vectors`); `zscore` puts scores of different stages on
one scale.
"""

from __future__ import annotations

import contextlib
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmsearch.encoders.base import Encoder
from mmsearch.media import IMAGE

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
STOP_WORDS = frozenset((
    "a", "an", "the", "of", "in", "on", "at", "to", "and", "or", "is", "are", "was", "were", "be",
    "been", "being", "with", "without", "his", "her", "their", "its", "it", "this", "that",
    "these", "those", "there", "here", "for", "from", "by", "into", "onto", "up", "down", "while",
    "as", "one", "two", "three", "some", "other", "each", "near", "next", "front", "top", "out",
    "over", "under", "through", "across", "who", "which", "what", "where", "when", "has", "have",
    "had", "he", "she", "they", "them", "him", "we", "you", "i", "my", "your", "our", "very",
    "just",
))
"""Words that name nothing one could see: they would match every image a little."""


WORD_CACHE = 4096
"""Word vectors kept per model: a session's queries share many words, and each embedding costs
a run of the text model (~5 ms on a quiet core for a query's words, several times that when
the machine is busy)."""
_word_vectors: weakref.WeakKeyDictionary[Encoder, OrderedDict[str, np.ndarray]] = (
    weakref.WeakKeyDictionary()
)
_blas: dict[str, Any] = {}
_blas_lock = threading.Lock()


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """BLAS limited to one thread while a query's small products run: OpenBLAS's thread pool
    turned a (6 x 384) @ (384 x 1000) product from 0.6 ms into 24-31 ms on these 2-core
    machines whenever another process held a core (measured). A controller made once costs
    ~0.7 ms per use; without threadpoolctl nothing is limited."""
    with _blas_lock:
        if "controller" not in _blas:
            try:
                from threadpoolctl import ThreadpoolController

                _blas["controller"] = ThreadpoolController()
            except ImportError:
                _blas["controller"] = None
    controller = _blas["controller"]
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def uncached_words(encoder: Encoder, words: Sequence[str]) -> list[str]:
    """Those of `words` that `word_vectors` would have to embed."""
    with _blas_lock:
        cache = _word_vectors.get(encoder, {})
        return [w for w in words if w not in cache]


def remember_words(encoder: Encoder, words: Sequence[str], vectors: np.ndarray) -> None:
    """Keep `vectors` (unit rows, one per word, embedded elsewhere: with a query) for
    `word_vectors`."""
    with _blas_lock:
        cache = _word_vectors.setdefault(encoder, OrderedDict())
        for word, vector in zip(words, vectors):
            cache[word] = vector
        while len(cache) > WORD_CACHE:
            cache.popitem(last=False)


def word_vectors(encoder: Encoder, words: Sequence[str]) -> np.ndarray:
    """Unit text vectors of single words, `(len(words), dim)`, from a small per-model cache."""
    missing = uncached_words(encoder, words)
    if missing:
        remember_words(encoder, missing, encoder.embed_texts(missing))
    with _blas_lock:
        cache = _word_vectors.setdefault(encoder, OrderedDict())
        rows = []
        for word in words:
            vector = cache.get(word)
            if vector is None:  # evicted meanwhile by another thread's words
                vector = encoder.embed_texts([word])[0]
            else:
                cache.move_to_end(word)
            rows.append(vector)
    return np.stack(rows)


def image_word_vectors(encoder: Encoder, words: Sequence[str]) -> np.ndarray:
    """`word_vectors` of query words written in the model's image template, as they are
    matched with image regions (the offline bridge's "a photo of a dog.")."""
    return word_vectors(encoder, image_word_texts(encoder, words))


def image_word_texts(encoder: Encoder, words: Sequence[str]) -> list[str]:
    """Query words as `image_word_vectors` embeds them: in the model's image template."""
    template = encoder.word_template(IMAGE)
    return [template.format(name=w) for w in words]


def content_words(text: str, limit: int = 16) -> list[str]:
    """The query's words worth matching to regions, lower-cased, in order, each once."""
    seen: list[str] = []
    for word in _WORD.findall(text.lower()):
        if word not in STOP_WORDS and len(word) > 1 and word not in seen:
            seen.append(word)
    return seen[:limit]


def zscore(values: np.ndarray) -> np.ndarray:
    """Values centred and scaled to unit spread; all-equal values give zeros."""
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 1e-9 else np.zeros_like(values)
