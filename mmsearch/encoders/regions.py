"""What each region of an image shows, kept small enough to store for every image.

The reranker (`mmsearch/query/rerank.py`) matches each query word to its best regions, so it
needs per-region vectors in the text space. Storing 81 float32 vectors of 384 dimensions would
cost 124 KB per image; a label bridge's region is fully described by its top-k classes and
their weights, so that is what is stored (81 x 10 x (2 + 2) bytes = 3.2 KB for Lite2), and the
vectors are mixed from the model's label matrix when a query needs them.

Models whose regions are vectors of their own (OpenCLIP's patch tokens through the model's
projection) store them as `PATCH_INT8`: the patch grid average-pooled to at most
`PATCH_GRID` x `PATCH_GRID` regions, each a unit vector kept in 8 bits with one scale. For
ViT-B/32 (7 x 7 patches, 512 dimensions) that is 16 x (512 + 2) bytes = 8.2 KB per image,
where all 49 patches in float16 would be 50 KB; a 16-region grid still tells the corner of a
photo with a dog in it from the rest (cells of 56 pixels at 224).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LABEL_TOPK = "label-topk-v1"
"""Format: per region, the ids (uint16) and weights (float16) of its top-k label classes;
optionally followed by the whole image's broader label mix (ids, then weights; see `image_topk`
and the offline model's `IMAGE_CODES_WIDE_SHARE`). Records without that tail (indexes built
before it) read as before."""
PATCH_INT8 = "patch-int8-v1"
"""Format: per region a float16 scale, then per region `width` int8 numbers; a region's vector
is its numbers times its scale (unit length up to the rounding)."""
PATCH_GRID = 4
"""Regions per side of an image stored as `PATCH_INT8` (the module doc says why)."""


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

    @classmethod
    def from_vectors(cls, vectors: np.ndarray) -> RegionCodes:
        """Regions from unit vectors `(regions, dim)`, kept in 8 bits (`PATCH_INT8`)."""
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"region vectors {vectors.shape} must be (regions, dim)")
        peak = np.abs(vectors).max(axis=1, keepdims=True)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        numbers = np.clip(np.rint(vectors / scale), -127, 127).astype(np.int8)
        data = scale[:, 0].astype("<f2").tobytes() + numbers.tobytes()
        return cls(PATCH_INT8, int(vectors.shape[0]), int(vectors.shape[1]), data)

    def vectors(self) -> np.ndarray:
        """The unit vectors `(regions, dim)` float32 of a `PATCH_INT8` record."""
        if self.format != PATCH_INT8:
            raise ValueError(f"regions stored as {self.format!r}, not {PATCH_INT8!r}")
        if len(self.data) != self.count * (2 + self.width):
            raise ValueError(
                f"region record holds {len(self.data)} bytes, expected {self.count * (2 + self.width)}"
            )
        scale = np.frombuffer(self.data, "<f2", self.count).astype(np.float32)
        numbers = np.frombuffer(self.data, np.int8, self.count * self.width, offset=2 * self.count)
        vectors = numbers.reshape(self.count, self.width).astype(np.float32) * scale[:, None]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

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


def pooled_patches(tokens: np.ndarray, grid: int = PATCH_GRID) -> list[RegionCodes]:
    """Per image, its patch vectors `(n, patches, dim)` (a square grid in row order, in the
    text space) average-pooled into at most `grid` x `grid` regions, as `PATCH_INT8` records.

    Cells overlap where the patch grid does not divide evenly (7 patches into 4: 0-1, 1-3,
    3-5, 5-6), as adaptive average pooling does.
    """
    tokens = np.asarray(tokens, np.float32)
    n, patches, dim = tokens.shape
    side = round(patches**0.5)
    if side * side != patches:
        raise ValueError(f"{patches} patches do not form a square grid")
    cells = min(side, grid)
    bounds = [(i * side // cells, -(-(i + 1) * side // cells)) for i in range(cells)]
    square = tokens.reshape(n, side, side, dim)
    pooled = np.stack(
        [square[:, r0:r1, c0:c1].mean(axis=(1, 2)) for r0, r1 in bounds for c0, c1 in bounds], axis=1
    )
    pooled /= np.maximum(np.linalg.norm(pooled, axis=2, keepdims=True), 1e-12)
    return [RegionCodes.from_vectors(image) for image in pooled]
