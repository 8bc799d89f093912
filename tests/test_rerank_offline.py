"""The reranker with the real offline default: regions are stored with each photo, searches
use them, and an index whose photos have none still answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from mmsearch import Library
from mmsearch.config import Settings
from mmsearch.query.rerank import RERANK

skimage_data = pytest.importorskip("skimage.data")
pytestmark = pytest.mark.models

PHOTOS = {"chelsea": "cat.jpg", "coffee": "coffee.png", "rocket": "launch.webp", "astronaut": "portrait.jpg"}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rerank-offline")
    media = root / "media"
    media.mkdir()
    for name, file in PHOTOS.items():
        Image.fromarray(getattr(skimage_data, name)()).save(media / file)
    (media / "bread.md").write_text("Sourdough: mix flour, water and salt, let the dough rise, bake.")
    with Library.open(root / "index", model="offline-default") as lib:
        lib.index([media])
    return root / "index"


def test_every_photo_gets_its_regions_in_3_kb(indexed: Path) -> None:
    with Library.open(indexed, create=False, readonly=True) as lib:
        rows = lib._catalog.db.execute("SELECT count, width, length(data) FROM regions").fetchall()
    assert len(rows) == len(PHOTOS)  # photos only: the note has none
    assert all(row == (81, 10, 81 * 10 * 4) for row in rows)  # Lite2: 9 x 9 cells, top-10


@pytest.mark.parametrize(("query", "expected"), [("a cat on a rug", "cat.jpg"), ("a cup of coffee", "coffee.png")])
def test_reranked_search_keeps_the_right_photo_first_and_shows_its_region_score(
    indexed: Path, query: str, expected: str
) -> None:
    with Library.open(indexed, create=False, readonly=True) as lib:
        hits = lib.search(query, k=3, kinds=["image"], min_score=-1)
    assert Path(hits[0].path).name == expected
    assert all(RERANK in hit.scores for hit in hits)
    assert hits[0].scores[RERANK] == max(hit.scores[RERANK] for hit in hits)


def test_photos_indexed_before_regions_existed_are_still_found(indexed: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "old-index"
    shutil.copytree(indexed, copy)
    with Library.open(copy, create=False) as lib:
        with lib._catalog.write():
            lib._catalog.db.execute("DELETE FROM regions")
        hits = lib.search("a cat", k=2, kinds=["image"], min_score=-1)
    assert Path(hits[0].path).name == "cat.jpg"
    assert all(RERANK not in hit.scores for hit in hits)


def test_rerank_can_be_turned_off(indexed: Path) -> None:
    with Library.open(indexed, create=False, readonly=True, settings=Settings(rerank=False)) as lib:
        hits = lib.search("a cat", k=2, kinds=["image"], min_score=-1)
    assert Path(hits[0].path).name == "cat.jpg"
    assert all(RERANK not in hit.scores for hit in hits)
