"""FAISS vector stores: index choice, approximate recall against exact, filters, safe saves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmsearch.encoders.base import l2_normalise
from mmsearch.store.vectors import EXACT, FaissStore, choose_factory


def clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim))
    return l2_normalise(centres[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, dim)))


def test_choice_is_exact_when_small_and_ivf_when_large() -> None:
    assert choose_factory(10_000, 384, exact_below=50_000) == EXACT
    assert choose_factory(100_000, 384, exact_below=50_000) == "IVF1024,Flat"
    assert choose_factory(1_000_000, 384, exact_below=50_000) == "IVF4096,SQ8"
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
