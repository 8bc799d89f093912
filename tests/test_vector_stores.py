"""The same store tests against both vector stores: FAISS (embedded, the default) and Milvus
(through pymilvus, on Milvus Lite: the client code a Milvus cluster runs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import COLOURS, make_image

from mmsearch import Library
from mmsearch.config import Settings
from mmsearch.store.vectors import VectorStore

BACKENDS = ["faiss", "milvus"]


@pytest.fixture(autouse=True)
def _close_milvus():
    """Each test's Milvus Lite file runs its own server process: stop them as tests end."""
    yield
    from mmsearch.store.milvus import close_all

    close_all()


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def make_store(backend: str, tmp_path: Path, dim: int) -> VectorStore:
    if backend == "faiss":
        from mmsearch.store.vectors import FaissStore

        return FaissStore.empty(dim)
    from mmsearch.store.milvus import MilvusStore, client

    return MilvusStore.create(client(str(tmp_path / "milvus.db")), "test_space", dim)


@pytest.mark.parametrize("backend", BACKENDS)
def test_add_search_filter_remove(backend: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    vectors = unit(rng.normal(size=(300, 32)))
    ids = np.arange(1, 301, dtype=np.int64) * 10  # catalog ids: not 0..n-1
    store = make_store(backend, tmp_path, 32)
    store.add(ids[:200], vectors[:200])
    store.add(ids[200:], vectors[200:])
    assert len(store) == 300
    exact = vectors @ vectors[42]
    want = ids[np.argsort(-exact)[:10]]
    scores, got = store.search(vectors[42][None, :], 10)
    assert got.shape == (1, 10) and got[0][0] == ids[42]
    assert list(got[0]) == list(want)
    assert np.allclose(scores[0], np.sort(exact)[::-1][:10], atol=1e-4)
    # a filter keeps to the allowed ids and still fills k when it can
    allowed = ids[1::2]
    _, got = store.search(vectors[42][None, :], 10, allowed)
    assert set(got[0]) <= set(allowed) and len(set(got[0])) == 10
    # removed ids are gone; unknown ids are ignored
    store.remove(np.array([ids[42], 999_999], dtype=np.int64))
    assert len(store) == 299
    _, got = store.search(vectors[42][None, :], 10)
    assert ids[42] not in got[0]


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest) -> Settings:
    return Settings(vector_store=request.param)


def names(hits: list) -> list[str]:
    return [Path(h.path).name for h in hits]


def test_library_indexes_searches_removes_and_reopens(settings: Settings, tmp_path: Path) -> None:
    media = tmp_path / "media"
    for name, colour in COLOURS.items():
        make_image(media / f"{name}.png", colour)
    (media / "bread.md").write_text("Knead the dough and bake the bread.\n")
    index = tmp_path / "index"
    with Library.open(index, model="hash-test", settings=settings) as lib:
        assert lib.index([media]).added == 5
        assert names(lib.search("red", k=1)) == ["red.png"]
        assert names(lib.search(image=media / "blue.png", k=1)) == ["blue.png"]
        assert names(lib.search("bread", kinds=["text"], min_score=-1)) == ["bread.md"]
        assert lib.remove(media / "red.png") == 1
        assert "red.png" not in names(lib.search("red", k=5, min_score=-1))
        assert lib.check() == []
    manifest = json.loads((index / "manifest.json").read_text())
    backends = {e.get("backend", "faiss") for e in manifest["spaces"].values()}
    assert backends == {settings.vector_store}
    # reopened (another process would do the same): the stored vectors answer, nothing re-encoded
    make_image(media / "more" / "green2.png", COLOURS["green"], stripe=20)
    with Library.open(index, settings=settings) as lib:
        report = lib.index()
        assert (report.added, report.encoded, report.unchanged) == (1, 1, 4)
        assert set(names(lib.search("green", k=2))) == {"green.png", "green2.png"}
        assert lib.check() == []
        assert lib.stats().spaces["visual"]["count"] == 4


def test_a_reader_sees_what_the_writer_committed(settings: Settings, tmp_path: Path) -> None:
    media = tmp_path / "media"
    make_image(media / "red.png", COLOURS["red"])
    index = tmp_path / "index"
    with Library.open(index, model="hash-test", settings=settings) as writer:
        writer.index([media])
        reader = Library.open(index, settings=settings, readonly=True)
        assert names(reader.search("red", k=1)) == ["red.png"]
        make_image(media / "yellow.png", COLOURS["yellow"])
        writer.index()
        assert names(reader.search("yellow", k=1)) == ["yellow.png"]
        writer.remove(media / "red.png")
        assert "red.png" not in names(reader.search("red", k=3, min_score=-1))
        reader.close()


def test_a_reader_sees_commits_before_the_writer_saves(settings: Settings, tmp_path: Path) -> None:
    media = tmp_path / "media"
    make_image(media / "red.png", COLOURS["red"])
    index = tmp_path / "index"
    with Library.open(index, model="hash-test", settings=settings) as writer:
        writer.index([media])
        reader = Library.open(index, settings=settings, readonly=True)
        assert names(reader.search("red", k=1)) == ["red.png"]
        make_image(media / "yellow.png", COLOURS["yellow"])
        seen: list[list[str]] = []

        def before_save(p) -> None:  # every batch is committed; the vector stores not yet saved
            if p.phase == "save" and p.done == 0:
                seen.append(names(reader.search("yellow", k=1)))
                seen.append(names(reader.search("red", k=1)))

        writer.index(progress=before_save)
        assert seen == [["yellow.png"], ["red.png"]]
        reader.close()


def test_repair_rebuilds_the_vectors_from_the_catalog(settings: Settings, tmp_path: Path) -> None:
    media = tmp_path / "media"
    for name, colour in COLOURS.items():
        make_image(media / f"{name}.png", colour)
    index = tmp_path / "index"
    with Library.open(index, model="hash-test", settings=settings) as lib:
        lib.index([media])
        done = lib.repair()
        assert any("rebuilt" in line for line in done)
        assert names(lib.search("blue", k=1)) == ["blue.png"] and lib.check() == []


def test_switching_stores_refills_from_the_catalog(tmp_path: Path) -> None:
    media = tmp_path / "media"
    for name, colour in COLOURS.items():
        make_image(media / f"{name}.png", colour)
    index = tmp_path / "index"
    with Library.open(index, model="hash-test", settings=Settings()) as lib:
        lib.index([media])
    for store in ("milvus", "faiss", "milvus"):
        with Library.open(index, settings=Settings(vector_store=store)) as lib:
            assert lib.index().encoded == 0  # nothing re-encoded: the catalog has the vectors
            assert names(lib.search("yellow", k=1)) == ["yellow.png"]
            assert lib.check() == []
