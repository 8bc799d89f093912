"""What each region of an image shows, kept small enough to store for every image.

The reranker (`mmsearch/query/rerank.py`) matches each query word to its best regions, so it
needs per-region vectors in the text space. Storing 81 float32 vectors of 384 dimensions would
cost 124 KB per image; a label bridge's region is fully described by its top-k classes and
their weights, so that is what is stored (81 x 10 x (2 + 2) bytes = 3.2 KB for Lite2), and the
vectors are mixed from the model's label matrix when a query needs them.

Other encoders plug in with their own `format` (e.g. float16 patch tokens for OpenCLIP).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LABEL_TOPK = "label-topk-v1"
"""Format: per region, the ids (uint16) and weights (float16) of its top-k label classes;
optionally followed by the whole image's broader label mix (ids, then weights; see `image_topk`
and the offline model's `IMAGE_CODES_WIDE_SHARE`). Records without that tail (indexes built
before it) read as before."""


@dataclass(frozen=True)
class RegionCodes:
    """Regions of one image in a storable form: `format` says how to read `data`."""

    format: str
    count: int
    """Number of regions."""
    width: int
    """Numbers per region (top-k for `LABEL_TOPK`)."""
    data: bytes

    @classmethod
    def from_label_topk(
        cls, ids: np.ndarray, weights: np.ndarray,
        image: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> RegionCodes:
        """Regions from the top-k class ids `(regions, k)` and weights `(regions, k)`, and
        optionally the whole image's `(ids (m,), weights (m,))`."""
        ids = np.asarray(ids)
        if ids.shape != np.shape(weights) or ids.ndim != 2:
            raise ValueError(f"ids {ids.shape} and weights {np.shape(weights)} must be (regions, k)")
        data = _codes(ids, weights)
        if image is not None:
            image_ids = np.asarray(image[0])
            if image_ids.ndim != 1 or image_ids.shape != np.shape(image[1]):
                raise ValueError("the whole image's ids and weights must be two (m,) arrays")
            data += _codes(image_ids, image[1])
        return cls(LABEL_TOPK, int(ids.shape[0]), int(ids.shape[1]), data)

    def image_topk(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The whole image's `(ids (m,) int64, weights (m,) float32)`, if stored."""
        if self.format != LABEL_TOPK:
            return None
        start = 4 * self.count * self.width
        tail = len(self.data) - start
        if tail <= 0 or tail % 4:
            return None
        m = tail // 4
        ids = np.frombuffer(self.data, "<u2", m, offset=start)
        weights = np.frombuffer(self.data, "<f2", m, offset=start + 2 * m)
        return ids.astype(np.int64), weights.astype(np.float32)

    def label_topk(self) -> tuple[np.ndarray, np.ndarray]:
        """`(ids (regions, k) int64, weights (regions, k) float32)` of a `LABEL_TOPK` record."""
        if self.format != LABEL_TOPK:
            raise ValueError(f"regions stored as {self.format!r}, not {LABEL_TOPK!r}")
        n = self.count * self.width
        if len(self.data) < 4 * n or len(self.data) % 4:
            raise ValueError(f"region record holds {len(self.data)} bytes, expected {4 * n} or more")
        ids = np.frombuffer(self.data, "<u2", n).reshape(self.count, self.width)
        weights = np.frombuffer(self.data, "<f2", n, offset=2 * n).reshape(self.count, self.width)
        return ids.astype(np.int64), weights.astype(np.float32)


def _codes(ids: np.ndarray, weights: np.ndarray) -> bytes:
    """Ids as uint16, then weights as float16."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.uint16).max):
        raise ValueError("class ids must fit 16 bits")
    return ids.astype("<u2").tobytes() + np.asarray(weights).astype("<f2").tobytes()
