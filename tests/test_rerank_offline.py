"""The reranker with the real offline default: regions are stored with each photo, searches
use them, and an index whose photos have none still answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from mmsearch import Library
from mmsearch.config import Settings
from mmsearch.query.rerank import RERANK, WIDER

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


def test_every_photo_gets_its_regions_and_its_wider_mix_in_3_kb(indexed: Path) -> None:
    with Library.open(indexed, create=False, readonly=True) as lib:
        rows = lib._catalog.db.execute("SELECT count, width, length(data) FROM regions").fetchall()
        ids = [row[0] for row in lib._catalog.db.execute("SELECT item_id FROM regions")]
        codes = lib._catalog.item_regions(ids)
    assert len(rows) == len(PHOTOS)  # photos only: the note has none
    # Lite2: 9 x 9 cells, top-10; then the whole image's top 50.
    assert all(row == (81, 10, (81 * 10 + 50) * 4) for row in rows)
    assert all(len(c.image_topk()[0]) == 50 for c in codes.values())


@pytest.mark.parametrize(("query", "expected"), [("a cat on a rug", "cat.jpg"), ("a cup of coffee", "coffee.png")])
def test_reranked_search_keeps_the_right_photo_first_and_shows_its_region_score(
    indexed: Path, query: str, expected: str
) -> None:
    with Library.open(indexed, create=False, readonly=True) as lib:
        hits = lib.search(query, k=3, kinds=["image"], min_score=-1)
    assert Path(hits[0].path).name == expected
    assert all(RERANK in hit.scores and WIDER in hit.scores for hit in hits)
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


SEARCH_IN_CHILD = """
import json, sys
from mmsearch import Library
with Library.open(sys.argv[1], create=False, readonly=True) as lib:
    hits = lib.search("a cat on a rug", k=4, kinds=["image"], min_score=-1)
print(json.dumps({"torch": "torch" in sys.modules,
                  "hits": [[h.path, h.scores.get("rerank")] for h in hits]}))
"""


def search_in_child(index: Path) -> dict:
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", SEARCH_IN_CHILD, str(index)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_tuned_head_in_the_index_runs_at_search_time_without_torch(indexed: Path, tmp_path: Path) -> None:
    """`tune` stores the head as ONNX beside the index: untrained it ranks exactly as the
    zero-shot reranker; changed weights change the region scores; no search loads torch."""
    import shutil

    import numpy as np
    torch = pytest.importorskip("torch")
    from mmsearch.learning.head import CrossAttentionHead, export_head
    from mmsearch.query.proposals import TunedAdapter

    zero_shot = search_in_child(indexed)
    copy = tmp_path / "tuned-index"
    shutil.copytree(indexed, copy)
    with Library.open(copy, create=False, readonly=True) as lib:
        labels = lib.encoder().label_vectors
    empty = [np.zeros(0, np.float32)] * 4
    head = CrossAttentionHead(labels)
    export_head(head, tmp_path / "head.onnx", (81, 10))
    TunedAdapter(*empty, weight=0.0, region_weight=1.0).save(copy, {"test": True}, head=tmp_path / "head.onnx")
    untrained = search_in_child(copy)
    assert not untrained["torch"]
    assert [p for p, _ in untrained["hits"]] == [p for p, _ in zero_shot["hits"]]
    np.testing.assert_allclose([s for _, s in untrained["hits"]], [s for _, s in zero_shot["hits"]], atol=1e-4)

    with torch.no_grad():
        head.up.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    export_head(head, tmp_path / "head.onnx", (81, 10))
    TunedAdapter(*empty, weight=0.0, region_weight=1.0).save(copy, {"test": True}, head=tmp_path / "head.onnx")
    changed = search_in_child(copy)
    assert not changed["torch"]
    assert not np.allclose(sorted(s for _, s in changed["hits"]), sorted(s for _, s in zero_shot["hits"]), atol=1e-3)
