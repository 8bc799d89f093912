"""FAISS vector stores: index choice, approximate recall against exact, filters, safe saves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmsearch.encoders.base import l2_normalise
from mmsearch.store.vectors import EXACT, REFINE_CANDIDATES, FaissStore, choose_factory, scalar_code


def clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim))
    return l2_normalise(centres[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, dim)))


def test_choice_is_exact_when_small_and_ivf_when_large() -> None:
    assert choose_factory(10_000, 384, exact_below=50_000) == EXACT
    assert choose_factory(100_000, 384, exact_below=50_000) == "IVF1024,Flat"
    assert choose_factory(1_000_000, 384, exact_below=50_000) == "IVF4096,SQ8"
    # OpenCLIP's 512-d: 6-bit codes keep the index near 400 bytes a vector, as 8 bits do at 384-d
    assert choose_factory(1_000_000, 512, exact_below=50_000) == "IVF4096,SQ6"
    assert [scalar_code(d) for d in (384, 512, 768)] == ["SQ8", "SQ6", "SQ4"]
    # the choice is stable while the collection grows a little (no rebuild every run)
    assert choose_factory(110_000, 384, 50_000) == choose_factory(100_000, 384, 50_000)


def test_ivf_recall_against_exact_is_high() -> None:
    vectors = clustered(20_000)
    ids = np.arange(1000, 21_000, dtype=np.int64)
    exact = FaissStore.build(32, EXACT, [(ids, vectors)])
    ivf = FaissStore.build(32, "IVF256,Flat", [(ids, vectors)])
    queries = clustered(100, seed=1)
    _, truth = exact.search(queries, 10)
    _, got = ivf.search(queries, 10)
    recall = np.mean([len(set(t) & set(g)) / 10 for t, g in zip(truth, got)])
    assert recall >= 0.9


@pytest.mark.parametrize("factory", [EXACT, "IVF16,Flat"])
def test_allowed_ids_restrict_results_and_removed_ids_vanish(factory: str) -> None:
    vectors = clustered(2000)
    ids = np.arange(2000, dtype=np.int64)
    store = FaissStore.build(32, factory, [(ids, vectors)])
    allowed = np.arange(0, 2000, 7, dtype=np.int64)
    _, got = store.search(vectors[:5], 10, allowed=allowed)
    assert set(got[got >= 0].tolist()) <= set(allowed.tolist())
    store.remove(np.array([3], dtype=np.int64))
    _, got = store.search(vectors[3:4], 5)
    assert 3 not in got[0]
    assert len(store) == 1999


def test_save_is_atomic_and_round_trips(tmp_path: Path) -> None:
    vectors = clustered(100)
    store = FaissStore.build(32, EXACT, [(np.arange(100, dtype=np.int64), vectors)])
    path = tmp_path / "space.faiss"
    store.save(path)
    assert not (tmp_path / "space.faiss.tmp").exists()
    again = FaissStore.load(path, EXACT)
    assert again.search(vectors[42:43], 1)[1][0][0] == 42


def tight_clusters(n: int, dim: int, seed: int) -> np.ndarray:
    """Near-duplicates around few centres: neighbours an 8-bit code cannot tell apart."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim))
    return l2_normalise(centres[rng.integers(0, 20, n)] + 0.05 * rng.standard_normal((n, dim))).astype(
        np.float32
    )


def test_a_quantised_index_ranks_its_candidates_by_exact_cosine() -> None:
    vectors = tight_clusters(5000, 64, seed=3)
    ids = np.arange(10, 5010, dtype=np.int64) * 3
    by_id = dict(zip(ids.tolist(), vectors))
    store = FaissStore.build(64, "IVF32,SQ8", [(ids, vectors)])
    queries = tight_clusters(50, 64, seed=4)
    exact = queries @ vectors.T
    want_ids = ids[np.argsort(-exact, axis=1)[:, :10]]
    want_scores = -np.sort(-exact, axis=1)[:, :10]

    codes_scores, codes_ids = store.search(queries, 10)
    # the 8-bit codes alone get neither the order nor the cosines right on near-duplicates
    assert (codes_ids != want_ids).any() and not np.allclose(codes_scores, want_scores, atol=1e-5)

    fetched: list[int] = []

    def exact_vectors(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fetched.append(len(wanted))
        keep = wanted[wanted != ids[0]]  # one vector deleted since the index was saved
        return keep, np.stack([by_id[int(i)] for i in keep])

    store.exact_vectors = exact_vectors
    scores, got = store.search(queries, 10)
    deleted = np.isin(want_ids, [ids[0]])
    assert not deleted.any() or ids[0] not in got
    assert (got == want_ids).all() and np.allclose(scores, want_scores, atol=1e-5)
    assert fetched and max(fetched) <= 50 * REFINE_CANDIDATES  # only the candidates were read, not everything
    # an item's own vector finds itself first with its exact cosine of 1
    s1, g1 = store.search(vectors[100:101], 1)
    assert g1[0][0] == ids[100] and abs(s1[0][0] - 1.0) < 1e-5
