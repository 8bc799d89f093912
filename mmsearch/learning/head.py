"""The trainable cross-attention reranking head (torch): built, trained and exported to ONNX.

Query time never imports this module: it runs the exported file with onnxruntime
(`mmsearch/query/head.py`). `mmsearch tune` (`mmsearch/tune.py`) trains it.

What the head computes for one query against N candidate images (offline default: regions are
stored as each region's top-k label classes and weights, `encoders/regions.py`):

- the query's content words, embedded in the label template (`(W, d)` unit vectors), are
  mapped by `q' = normalise(q + B(A q))` (a low-rank residual: zero at start);
- each word attends over each candidate's regions: its cosine with region r is
  `sum_k w_rk (q' . L_{id_rk})` (L: the label bridge's class vectors, a constant of the graph);
- a word's match with an image pools its best `TOP_REGIONS` region cosines with learnt weights
  over their ranks (softmax of zeros at start: their mean), plus a soft attention over every
  region, `softmax(s / tau) . s`, whose share starts at 0;
- words are pooled by a learnt gate `softmax(g . q')` over the query's words (zeros at start:
  their mean).

Untrained, it is exactly the zero-shot late-interaction score of `query/rerank.py` (each word's
mean of its 5 best region cosines, averaged over words); a test holds the two together.

Models whose regions are vectors of their own (OpenCLIP's patch tokens through its projection,
`regions.PATCH_INT8`) get `PatchAttentionHead`: the same head, with the region vectors as an
input `(N, R, d)` in place of the label codes and the label matrix.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmsearch.query.head import HEAD_INPUTS, HEAD_OUTPUT, PATCH_HEAD_INPUTS, TOP_REGIONS

RANK = 32
"""Rank of the query map's residual: a full 384 x 384 map overfits a few thousand captions."""


class CrossAttentionHead(nn.Module):
    """Scores N candidates' label-coded regions against a query's word vectors (module doc)."""

    def __init__(self, label_vectors: np.ndarray, *, rank: int = RANK, top_regions: int = TOP_REGIONS):
        super().__init__()
        self._build(label_vectors.shape[1], rank, top_regions)
        self.register_buffer("labels", torch.from_numpy(np.ascontiguousarray(label_vectors, np.float32)))

    def _build(self, dim: int, rank: int, top_regions: int) -> None:
        self.dim = dim
        self.down = nn.Linear(dim, rank, bias=False)
        self.up = nn.Linear(rank, dim, bias=False)
        nn.init.zeros_(self.up.weight)  # q' = q at start
        self.gate = nn.Linear(dim, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)
        self.rank_weights = nn.Parameter(torch.zeros(top_regions))
        self.attention_share = nn.Parameter(torch.zeros(()))
        self.log_temperature = nn.Parameter(torch.tensor(math.log(0.05)))
        self.top_regions = top_regions

    def queries(self, words: torch.Tensor) -> torch.Tensor:
        """Word vectors `(..., d)` mapped for matching, unit length."""
        return nn.functional.normalize(words + self.up(self.down(words)), dim=-1)

    def pool_regions(self, sims: torch.Tensor) -> torch.Tensor:
        """`(..., regions)` cosines of a word with an image's regions -> `(...)` its match."""
        top = torch.topk(sims, self.top_regions, dim=-1).values
        pooled = (top * torch.softmax(self.rank_weights, 0)).sum(-1)
        attention = torch.softmax(sims / self.log_temperature.exp(), dim=-1)
        return pooled + self.attention_share * (attention * sims).sum(-1)

    def word_weights(self, mapped: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`(..., W)` weights of the query's words (sum 1 over the unmasked ones)."""
        logits = self.gate(mapped).squeeze(-1)
        if mask is not None:
            logits = logits.masked_fill(~mask, -1e9)
        return torch.softmax(logits, dim=-1)

    def forward(self, words: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """One query: `words (W, d)`, region codes `ids (N, R, K)` int64 and `weights (N, R, K)`
        -> scores `(N,)`."""
        mapped = self.queries(words)
        text_label = mapped @ self.labels.T  # (W, labels)
        sims = (text_label[:, ids] * weights).sum(-1)  # (W, N, R)
        matches = self.pool_regions(sims)  # (W, N)
        return (self.word_weights(mapped)[:, None] * matches).sum(0)

    def batch_scores(
        self, words: torch.Tensor, mask: torch.Tensor, regions: torch.Tensor,
        candidates: torch.Tensor, region_count: int,
    ) -> torch.Tensor:
        """Training form of `forward` for B queries at once.

        Args:
            words: `(B, W, d)` padded word vectors; `mask` `(B, W)` marks the real ones.
            regions: sparse `(images * region_count, labels)` matrix of the region codes.
            candidates: `(B, C)` image rows each query is scored against.
        Returns:
            `(B, C)` scores.
        """
        b, w, d = words.shape
        mapped = self.queries(words)
        sims = self.all_similarities(mapped.reshape(b * w, d), regions)  # (B*W, images*regions)
        sims = sims.reshape(b, w, -1, region_count)
        index = candidates[:, None, :, None].expand(b, w, candidates.shape[1], region_count)
        picked = torch.gather(sims, 2, index)  # (B, W, C, R)
        matches = self.pool_regions(picked)  # (B, W, C)
        return (self.word_weights(mapped, mask)[..., None] * matches).sum(1)

    def all_similarities(self, mapped: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        """Cosines `(words, images * regions)` of mapped words with every region of
        `regions` (here: `sparse_regions`' matrix of label codes)."""
        return torch.sparse.mm(regions, (mapped @ self.labels.T).T).T


class PatchAttentionHead(CrossAttentionHead):
    """The head for regions stored as vectors (module doc): `forward(words (W, d), regions
    (N, R, d))`; untrained, the zero-shot late interaction over those vectors."""

    def __init__(self, dim: int, *, rank: int = RANK, top_regions: int = TOP_REGIONS):
        nn.Module.__init__(self)
        self._build(dim, rank, top_regions)

    def forward(self, words: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        mapped = self.queries(words)
        sims = torch.einsum("wd,nrd->wnr", mapped, regions)
        return (self.word_weights(mapped)[:, None] * self.pool_regions(sims)).sum(0)

    def all_similarities(self, mapped: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        """`regions` here: the dense `(images * regions, d)` region vectors."""
        return mapped @ regions.T


@dataclass(frozen=True)
class LabelCodes:
    """Regions as the offline model stores them, for training: the label bridge's class
    vectors `(labels, d)` and each image's region codes, ids and weights `(images, R, K)`."""

    labels: np.ndarray
    ids: np.ndarray
    weights: np.ndarray


TrainingRegions = LabelCodes | np.ndarray
"""Label codes, or region vectors `(images, R, d)` (`PatchAttentionHead`)."""


def head_for(regions: TrainingRegions) -> tuple[CrossAttentionHead, torch.Tensor, int]:
    """An untrained head for `regions`, the regions in the form its `batch_scores` takes, and
    the number of regions per image."""
    if isinstance(regions, LabelCodes):
        matrix = sparse_regions(regions.ids, regions.weights, regions.labels.shape[0])
        return CrossAttentionHead(regions.labels), matrix, regions.ids.shape[1]
    vectors = np.ascontiguousarray(regions, np.float32)
    dense = torch.from_numpy(vectors.reshape(-1, vectors.shape[2]))
    return PatchAttentionHead(vectors.shape[2]), dense, vectors.shape[1]


def sparse_regions(ids: np.ndarray, weights: np.ndarray, labels: int) -> torch.Tensor:
    """Region codes `(images, R, K)` as a sparse `(images * R, labels)` matrix."""
    rows = np.repeat(np.arange(ids.shape[0] * ids.shape[1]), ids.shape[2])
    index = torch.from_numpy(np.stack([rows, ids.reshape(-1)]).astype(np.int64))
    values = torch.from_numpy(weights.reshape(-1).astype(np.float32))
    shape = (ids.shape[0] * ids.shape[1], labels)
    matrix = torch.sparse_coo_tensor(index, values, shape, check_invariants=True).coalesce()
    with warnings.catch_warnings():  # "CSR support is in beta": products with it are tested
        warnings.simplefilter("ignore", UserWarning)
        # CSR: a quarter faster than COO in the products of training (measured, one thread).
        return matrix.to_sparse_csr()


def export_head(head: CrossAttentionHead, target: Path, region_shape: tuple[int, int]) -> None:
    """Write `head` as an ONNX file at `target`, checked against torch on a sample;
    `region_shape` is (regions, k) for label codes, (regions, d) for region vectors."""
    from mmsearch.encoders.onnx_cache import export_checked

    regions, width = region_shape
    generator = torch.Generator().manual_seed(0)
    words = nn.functional.normalize(torch.randn(3, head.dim, generator=generator), dim=-1)
    if isinstance(head, PatchAttentionHead):
        names = PATCH_HEAD_INPUTS
        vectors = nn.functional.normalize(torch.randn(4, regions, width, generator=generator), dim=-1)
        sample: dict[str, Any] = {names[0]: words, names[1]: vectors}
    else:
        names = HEAD_INPUTS
        sample = {
            names[0]: words,
            names[1]: torch.randint(0, head.labels.shape[0], (4, regions, width), generator=generator),
            names[2]: torch.rand(4, regions, width, generator=generator) / width,
        }
    head.eval()
    export_checked(
        head, sample, target, output_names=[HEAD_OUTPUT],
        dynamic_axes={
            names[0]: {0: "words"},
            **{name: {0: "candidates"} for name in names[1:]},
            HEAD_OUTPUT: {0: "candidates"},
        },
        what="the reranking head",
    )


# --------------------------------------------------------------------------------------------
# Training

EPOCHS = 8
BATCH = 32
LEARNING_RATE = 3e-3


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Training on one thread, restored afterwards: the machines this runs on are shared, and
    a second thread buys little for products this small."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _zscore(values: torch.Tensor) -> torch.Tensor:
    """Rows centred and scaled to unit spread (as `query/rerank.py: fuse` does over the N)."""
    return (values - values.mean(-1, keepdim=True)) / (values.std(-1, unbiased=False, keepdim=True) + 1e-6)


def train_head(
    regions: TrainingRegions,
    words: list[np.ndarray],
    owners: np.ndarray,
    candidates: np.ndarray,
    first: np.ndarray,
    *,
    region_weight: float = 1.0,
    epochs: int = EPOCHS,
    seed: int = 0,
) -> tuple[CrossAttentionHead, float]:
    """Train a head to rerank each caption's first-stage candidates, fused as at query time.

    Args:
        regions: the regions of the images that appear: label codes, or region vectors
            `(images, R, d)` (see `head_for`).
        words: per caption, its content words' vectors `(W, d)` (W >= 1).
        owners: `(captions,)` row of each caption's image.
        candidates: `(captions, C)` rows of its first-stage top-C among the training images
            (its own image among them: captions whose image the first stage missed teach the
            head nothing it could use).
        first: `(captions, C)` their first-stage scores.
        region_weight: the fusion weight the head's z-scored score starts from.

    Returns:
        The trained head (eval mode) and the learnt fusion weight of its score.
    """
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    head, matrix, count = head_for(regions)
    width = max(len(w) for w in words)
    dim = head.dim
    padded = np.zeros((len(words), width, dim), np.float32)
    mask = np.zeros((len(words), width), bool)
    for row, vectors in enumerate(words):
        padded[row, : len(vectors)] = vectors
        mask[row, : len(vectors)] = True
    padded_t, mask_t = torch.from_numpy(padded), torch.from_numpy(mask)
    candidates_t = torch.from_numpy(candidates.astype(np.int64))
    first_z = _zscore(torch.from_numpy(first.astype(np.float32)))
    target = torch.from_numpy((candidates == owners[:, None]).argmax(1).astype(np.int64))
    log_weight = nn.Parameter(torch.tensor(math.log(region_weight)))
    log_scale = nn.Parameter(torch.tensor(math.log(3.0)))
    optimiser = torch.optim.AdamW(
        [*head.parameters(), log_weight, log_scale], lr=LEARNING_RATE, weight_decay=1e-3
    )
    head.train()
    with torch.enable_grad(), one_torch_thread():
        for _ in range(epochs):
            order = torch.from_numpy(generator.permutation(len(words)))
            for start in range(0, len(words), BATCH):
                rows = order[start : start + BATCH]
                # Padded to the batch's longest caption, not the longest of all: 2-3x faster.
                longest = int(mask_t[rows].sum(1).max())
                scores = head.batch_scores(
                    padded_t[rows, :longest], mask_t[rows, :longest], matrix, candidates_t[rows], count
                )
                fused = first_z[rows] + log_weight.exp() * _zscore(scores)
                loss = nn.functional.cross_entropy(log_scale.exp() * fused, target[rows])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    head.eval()
    return head, float(log_weight.detach().exp())
