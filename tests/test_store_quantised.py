"""A large index keeps quantised codes in memory and re-scores candidates with the catalog's
float vectors: searches must return what exact search returns, also across saves, reopens,
additions and removals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmsearch.encoders.base import SEMANTIC, l2_normalise
from mmsearch.store import vectors as vectors_module
from mmsearch.store.catalog import Catalog
from mmsearch.store.catalog_items import ItemFacts
from mmsearch.store.manifest import MANIFEST
from mmsearch.store.spaces import SpaceSet

DIM = 64


def near_duplicates(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, DIM))
    rows = centres[rng.integers(0, 30, n)] + 0.05 * rng.standard_normal((n, DIM))
    return l2_normalise(rows).astype(np.float32)


def add_items(catalog: Catalog, spaces: SpaceSet, names: range, vectors: np.ndarray) -> None:
    with catalog.write():
        for name, vector in zip(names, vectors):
            facts = ItemFacts(f"/photos/img{name:05d}.jpg", "/photos", "image", 1000, name, f"h{name}")
            catalog.write_item(facts, {SEMANTIC: vector[None]})
    spaces.refresh()


def open_index(folder: Path) -> tuple[Catalog, SpaceSet]:
    catalog = Catalog(folder / "catalog.db")
    spaces = SpaceSet(folder, catalog, exact_below=1000, about={})
    spaces.load()
    return catalog, spaces


def exact_top(catalog: Catalog, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ids, vecs = zip(*catalog.iter_vectors(SEMANTIC, DIM))
    all_ids, all_vecs = np.concatenate(ids), np.concatenate(vecs)
    scores = queries @ all_vecs.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), all_ids[order]


def assert_as_exact(catalog: Catalog, queries: np.ndarray, scores: np.ndarray, got: np.ndarray) -> None:
    """Each hit carries its true cosine and the hits are as close as exact search's (ids may
    swap only where cosines tie to float rounding)."""
    want_scores, want_ids = exact_top(catalog, queries, got.shape[1])
    found, vecs = catalog.vectors_by_id(np.unique(got), DIM)
    assert np.isin(got, found).all()  # every hit is a vector the catalog holds
    order = np.argsort(found)
    true = np.einsum("qkd,qd->qk", vecs[order][np.searchsorted(found[order], got)], queries)
    assert np.allclose(scores, true, atol=1e-5)
    assert np.allclose(scores, want_scores, atol=1e-5)
    assert (got[:, 0] == want_ids[:, 0]).all()


def search(spaces: SpaceSet, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    with spaces.reading() as stores:
        return stores[SEMANTIC].search(queries, k)


@pytest.fixture(autouse=True)
def quantise_small_indexes(monkeypatch: pytest.MonkeyPatch) -> None:
    """What happens past ~1 GB of vectors, at a size a test can build."""
    monkeypatch.setattr(vectors_module, "COMPRESS_ABOVE_BYTES", 0)


def test_a_quantised_index_finds_each_item_first_with_its_exact_cosine(tmp_path: Path) -> None:
    catalog, spaces = open_index(tmp_path)
    spaces.ensure({SEMANTIC: DIM})
    vectors = near_duplicates(4000, seed=1)
    add_items(catalog, spaces, range(4000), vectors)
    spaces.save()
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["spaces"][SEMANTIC]["factory"] == "IVF256,SQ8"
    catalog.close()

    catalog, spaces = open_index(tmp_path)  # as a user's next search would: loaded from disk
    own = vectors[::40]
    scores, got = search(spaces, own, 10)
    assert (got[:, 0] == np.arange(1, 4001, 40)).all()  # vector ids follow the items here
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)
    assert_as_exact(catalog, own, scores, got)


def test_adds_and_removes_stay_exact_across_saves_and_reopens(tmp_path: Path) -> None:
    catalog, spaces = open_index(tmp_path)
    spaces.ensure({SEMANTIC: DIM})
    drawn = near_duplicates(3620, seed=2)  # 3000 indexed now, 600 added later, 20 never
    vectors, new, held_out = drawn[:3000], drawn[3000:3600], drawn[3600:]
    add_items(catalog, spaces, range(3000), vectors)
    spaces.save()
    catalog.close()

    catalog, spaces = open_index(tmp_path)
    gone_items = [row.id for row in catalog.items_under("/photos").values()][:500]
    gone_vectors = catalog.delete_items(gone_items)
    spaces.remove(gone_vectors)
    add_items(catalog, spaces, range(3000, 3600), new)
    queries = np.concatenate([vectors[:500:25], new[::30], held_out])
    before_save = search(spaces, queries, 10)
    spaces.save()
    catalog.close()

    catalog, spaces = open_index(tmp_path)
    for scores, got in (before_save, search(spaces, queries, 10)):
        assert_as_exact(catalog, queries, scores, got)
    assert len(gone_vectors) == 500 and not set(gone_vectors) & set(got.ravel().tolist())
    catalog.close()
