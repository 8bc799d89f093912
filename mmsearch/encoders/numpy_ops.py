"""The few neural-network operations the numpy text towers share (CLIP's, MiniLM's).

A text query is a handful of tokens: in numpy its products take milliseconds, while importing a
runtime and opening a session took 0.2-0.5 s. These towers exist for that case only; batches
(indexing) run in onnxruntime.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np

SMALL_BATCH_TOKENS = 1024
"""Tokens in a batch below which one BLAS thread is faster than several."""


@contextlib.contextmanager
def blas_for(tokens: int) -> Iterator[None]:
    """One BLAS thread for a small batch: waking more costs more than a query's tiny products,
    and on a busy machine a waiting thread stalls every one of them (seconds, measured)."""
    if tokens > SMALL_BATCH_TOKENS:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis."""
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(var + np.float32(eps)) * weight + bias


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (rows of -inf-free scores)."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as torch's `nn.GELU()` and BERT's `gelu`."""
    return 0.5 * x * (1.0 + erf(x * np.float32(1.0 / math.sqrt(2.0))))


def erf(x: np.ndarray) -> np.ndarray:
    """erf to ~1e-7 (Abramowitz & Stegun 7.1.26): numpy has none, and scipy is a heavy import."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)
