"""Keyword matches under the reranker, with the real offline default: a photo whose name spells
the query stays first, whatever its regions show."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from mmsearch import Library

skimage_data = pytest.importorskip("skimage.data")
pytestmark = pytest.mark.models

PHOTOS = {
    "astronaut": "astronaut.jpg", "camera": "cameraman.png", "chelsea": "cat.png",
    "coffee": "coffee.png", "rocket": "rocket.png", "clock": "clock.png",
    "hubble_deep_field": "sky.png", "text": "text.png", "page": "page.png",
}
# Named for what a user searches, showing something else: only the name can find them.
NAMED = {"coins": "lighthouse.png", "retina": "sailing boat.png", "moon": "dog on the beach.png"}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("keywords")
    media = root / "media"
    media.mkdir()
    for name, file in {**PHOTOS, **NAMED}.items():
        Image.fromarray(getattr(skimage_data, name)()).save(media / file)
    with Library.open(root / "index", model="offline-default") as lib:
        lib.index([media])
    return root / "index"


@pytest.mark.parametrize(("query", "name"), [
    ("lighthouse", "lighthouse.png"), ("sailing boat", "sailing boat.png"),
    ("a dog on the beach", "dog on the beach.png"),
])  # fmt: skip
def test_a_photo_named_by_the_query_stays_first_under_the_reranker(index: Path, query: str, name: str) -> None:
    with Library.open(index, create=False, readonly=True) as lib:
        hits = lib.search(query, k=4, kinds=["image"], min_score=-1)
    assert Path(hits[0].path).name == name
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)  # no flat ties
