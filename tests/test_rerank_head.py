"""The cross-attention head: untrained it is the zero-shot late interaction, exported it runs
with onnxruntime alone, and training moves it towards what captions say."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmsearch.encoders.base import Encoder, l2_normalise
from mmsearch.encoders.offline import OfflineEncoder
from mmsearch.encoders.regions import RegionCodes
from mmsearch.learning.head import (
    CrossAttentionHead,
    LabelCodes,
    PatchAttentionHead,
    export_head,
    train_head,
)
from mmsearch.query.head import HeadScorer
from mmsearch.query.rerank import Reranker

LABELS, DIM, REGIONS, TOPK = 60, 24, 12, 4


def random_codes(rng: np.random.Generator, images: int) -> list[RegionCodes]:
    out = []
    for _ in range(images):
        ids = np.stack([rng.choice(LABELS, TOPK, replace=False) for _ in range(REGIONS)])
        weights = rng.dirichlet(np.ones(TOPK), REGIONS).astype(np.float32)
        out.append(RegionCodes.from_label_topk(ids, weights))
    return out


def numpy_scores(labels: np.ndarray, words: np.ndarray, codes: list[RegionCodes]) -> np.ndarray:
    """The reranker's zero-shot score, through the offline model's own region arithmetic."""
    encoder = SimpleNamespace(label_vectors=labels)
    encoder.region_similarities = lambda c, t: OfflineEncoder.region_similarities(encoder, c, t)
    raw = Reranker.late_interaction(encoder, words, codes, list(range(len(codes))))
    return np.array([raw[i] for i in range(len(codes))])


def head_inputs(codes: list[RegionCodes]) -> tuple[torch.Tensor, torch.Tensor]:
    decoded = [c.label_topk() for c in codes]
    return (torch.from_numpy(np.stack([i for i, _ in decoded])),
            torch.from_numpy(np.stack([w for _, w in decoded])))


@pytest.fixture
def setup() -> tuple[np.ndarray, np.ndarray, list[RegionCodes]]:
    rng = np.random.default_rng(3)
    labels = l2_normalise(rng.normal(size=(LABELS, DIM)).astype(np.float32))
    words = l2_normalise(rng.normal(size=(4, DIM)).astype(np.float32))
    return labels, words, random_codes(rng, 30)


def test_untrained_head_scores_exactly_as_the_zero_shot_reranker(setup) -> None:
    labels, words, codes = setup
    expected = numpy_scores(labels, words, codes)
    with torch.no_grad():
        got = CrossAttentionHead(labels)(torch.from_numpy(words), *head_inputs(codes)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert list(np.argsort(-got)) == list(np.argsort(-expected))


def test_exported_head_runs_without_torch_and_matches(setup, tmp_path: Path) -> None:
    labels, words, codes = setup
    head = CrossAttentionHead(labels)
    export_head(head, tmp_path / "head.onnx", (REGIONS, TOPK))
    scorer = HeadScorer(tmp_path / "head.onnx")
    got = scorer.scores(words, codes)
    np.testing.assert_allclose(np.array(got), numpy_scores(labels, words, codes), atol=1e-5)
    # A different query length and candidate count through the same file.
    assert len(scorer.scores(words[:1], codes[:7])) == 7
    # Regions of another shape are not the head's to score: None, the reranker skips them.
    other = RegionCodes.from_label_topk(np.zeros((3, TOPK), int), np.ones((3, TOPK), np.float32))
    assert scorer.scores(words, [codes[0], other])[1] is None


def test_training_teaches_a_word_the_regions_that_show_it(setup) -> None:
    """Captions say "w0" where images show label 0, whose vector is unrelated to w0's: the
    zero-shot score cannot see it, the trained head learns to."""
    labels, _, _ = setup
    rng = np.random.default_rng(5)
    images = 40
    ids = np.stack([np.stack([rng.choice(np.arange(1, LABELS), TOPK, replace=False)
                              for _ in range(REGIONS)]) for _ in range(images)])
    weights = np.full((images, REGIONS, TOPK), 1.0 / TOPK, np.float32)
    showing = np.arange(images) % 2 == 0
    ids[showing, :3, 0] = 0  # three regions of every even image show label 0
    word = l2_normalise(rng.normal(size=(1, DIM)).astype(np.float32))
    filler = l2_normalise(rng.normal(size=(1, DIM)).astype(np.float32))
    owners = np.arange(images)
    candidates = np.stack([np.roll(np.arange(images), -o)[:10] for o in owners])
    first = np.zeros(candidates.shape, np.float32)
    words = [np.concatenate([word, filler]) if s else filler for s in showing]
    head, _ = train_head(LabelCodes(labels, ids, weights), words, owners, candidates, first, epochs=60)

    def margin(model: CrossAttentionHead) -> float:
        with torch.no_grad():
            scores = model(torch.from_numpy(np.concatenate([word, filler])),
                           torch.from_numpy(ids), torch.from_numpy(weights)).numpy()
        return float(scores[showing].mean() - scores[~showing].mean())

    assert margin(head) > margin(CrossAttentionHead(labels)) + 0.05


def random_patches(rng: np.random.Generator, images: int, regions: int = 16) -> list[RegionCodes]:
    return [RegionCodes.from_vectors(l2_normalise(rng.normal(size=(regions, DIM)))) for _ in range(images)]


def patch_scores(words: np.ndarray, codes: list[RegionCodes]) -> np.ndarray:
    """The reranker's zero-shot score over region vectors, as any model reads `PATCH_INT8`."""
    encoder = SimpleNamespace(region_vectors=lambda c: c.vectors())
    encoder.region_similarities = lambda c, t: Encoder.region_similarities(encoder, c, t)
    raw = Reranker.late_interaction(encoder, words, codes, list(range(len(codes))))
    return np.array([raw[i] for i in range(len(codes))])


def test_the_patch_head_untrained_and_exported_scores_as_the_zero_shot_reranker(tmp_path: Path) -> None:
    """OpenCLIP's regions are vectors: its head takes them as they are stored, computes the
    zero-shot late interaction before training, and runs from its ONNX file alone."""
    rng = np.random.default_rng(4)
    words = l2_normalise(rng.normal(size=(3, DIM)).astype(np.float32))
    codes = random_patches(rng, 20)
    expected = patch_scores(words, codes)
    head = PatchAttentionHead(DIM)
    with torch.no_grad():
        got = head(torch.from_numpy(words), torch.from_numpy(np.stack([c.vectors() for c in codes]))).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    export_head(head, tmp_path / "head.onnx", (16, DIM))
    scorer = HeadScorer(tmp_path / "head.onnx")
    np.testing.assert_allclose(np.array(scorer.scores(words, codes)), expected, atol=1e-5)
    assert len(scorer.scores(words[:1], codes[:5])) == 5
    # Label codes, or patch grids of another size, are not this head's to score.
    assert scorer.scores(words, [codes[0], random_codes(rng, 1)[0], random_patches(rng, 1, 9)[0]])[1:] == [None, None]


def test_training_teaches_a_word_the_patches_that_show_it() -> None:
    """Captions say "w0" where three patches of an image hold a vector only faintly like w0's
    (cosine 0.16, as a CLIP patch is to a word): the zero-shot score barely tells those images
    apart, the trained patch head learns to. (A patch wholly unlike the word never reaches a
    word's top regions, so no gradient reaches it: training sharpens what is faintly there.)"""
    rng = np.random.default_rng(6)
    images, regions = 40, 16
    vectors = l2_normalise(rng.normal(size=(images, regions, DIM)).astype(np.float32))
    showing = np.arange(images) % 2 == 0
    word = l2_normalise(rng.normal(size=(1, DIM)).astype(np.float32))
    thing = l2_normalise(0.3 * word + l2_normalise(rng.normal(size=(1, DIM)).astype(np.float32)))
    vectors[showing, :3] = thing
    filler = l2_normalise(rng.normal(size=(1, DIM)).astype(np.float32))
    owners = np.arange(images)
    candidates = np.stack([np.roll(np.arange(images), -o)[:10] for o in owners])
    first = np.zeros(candidates.shape, np.float32)
    words = [np.concatenate([word, filler]) if s else filler for s in showing]
    head, _ = train_head(vectors, words, owners, candidates, first, epochs=60)

    def margin(model: PatchAttentionHead) -> float:
        with torch.no_grad():
            scores = model(torch.from_numpy(np.concatenate([word, filler])), torch.from_numpy(vectors)).numpy()
        return float(scores[showing].mean() - scores[~showing].mean())

    assert margin(head) > margin(PatchAttentionHead(DIM)) + 0.15
