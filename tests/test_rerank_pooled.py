"""Pooled-region proposals with the real offline default: with no training, images the first
stage ranks below the reranker's N are brought in by what their regions show."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsearch import Library
from mmsearch.config import Settings

skimage_data = pytest.importorskip("skimage.data")
pytestmark = pytest.mark.models

# Two pictures of people, whose whole-image ImageNet labels name no person ("football helmet",
# "ski"; "tripod", "harmonica"), among things the first stage ranks first for "a person".
PHOTOS = {
    "astronaut": "astronaut.jpg", "camera": "cameraman.png", "chelsea": "cat.png",
    "coffee": "coffee.png", "rocket": "rocket.png", "coins": "coins.png", "clock": "clock.png",
    "hubble_deep_field": "sky.png", "moon": "moon.png", "text": "text.png", "page": "page.png",
    "retina": "retina.png",
}
PEOPLE = {"astronaut.jpg", "cameraman.png"}
SMALL_N = Settings(rerank=True, rerank_top_n=2)


@pytest.fixture
def photos(tmp_path: Path) -> tuple[Path, Path]:
    media = tmp_path / "media"
    media.mkdir()
    for name, file in PHOTOS.items():
        Image.fromarray(getattr(skimage_data, name)()).save(media / file)
    with Library.open(tmp_path / "index", model="offline-default") as lib:
        lib.index([media])
    return media, tmp_path / "index"


def names(lib: Library, query: str, k: int = 3) -> list[str]:
    return [Path(hit.path).name for hit in lib.search(query, k=k, kinds=["image"], min_score=-1)]


def test_pooled_regions_bring_in_the_people_the_first_stage_ranked_below_the_n(photos, monkeypatch) -> None:
    from mmsearch.query import rerank

    _, index = photos
    with Library.open(index, create=False, readonly=True, settings=Settings(rerank=False)) as lib:
        first = names(lib, "a person", k=len(PHOTOS))
    assert not PEOPLE & set(first[: SMALL_N.rerank_top_n])  # the first stage alone misses them
    with Library.open(index, create=False, readonly=True, settings=SMALL_N) as lib:
        assert set(names(lib, "a person", k=2)) == PEOPLE
        monkeypatch.setattr(rerank, "POOLED_PROPOSALS", 0)
        assert not PEOPLE & set(names(lib, "a person", k=2))  # the proposals' doing


def test_proposals_obey_the_query_filters_and_follow_the_index(photos) -> None:
    media, index = photos
    with Library.open(index, create=False, settings=SMALL_N) as lib:
        assert names(lib, "a person ext:png", k=1) == ["cameraman.png"]
        late = media / "late"
        late.mkdir()
        Image.fromarray(skimage_data.astronaut()[:300, 100:400]).save(late / "portrait.png")
        lib.index([media])  # the same Library: its pooled regions are brought up to date
        assert set(names(lib, "a person ext:png", k=2)) == {"cameraman.png", "portrait.png"}
        assert "portrait.png" in names(lib, "a person")
        assert "portrait.png" not in names(lib, "a person -folder:late")
        (late / "portrait.png").unlink()
        lib.index([media])
        assert "portrait.png" not in names(lib, "a person ext:png")


def test_an_images_pooled_regions_are_the_mean_of_its_region_vectors(photos) -> None:
    """The label bridge pools from the stored weights without building each region's vector;
    it must give what mixing every region and averaging would."""
    _, index = photos
    with Library.open(index, create=False, readonly=True) as lib:
        encoder = lib.encoder()
        ids = [row[0] for row in lib._catalog.db.execute("SELECT item_id FROM regions")]
        codes = list(lib._catalog.item_regions(ids).values())
        pooled = encoder.pooled_regions(codes)
    assert pooled is not None and pooled.shape == (len(PHOTOS), 384)
    for codes_, vector in zip(codes, pooled):
        mean = encoder.region_vectors(codes_).mean(axis=0)
        np.testing.assert_allclose(vector, mean / np.linalg.norm(mean), atol=1e-5)


def test_a_search_in_a_new_process_pools_only_the_images_indexed_since(photos, monkeypatch) -> None:
    """The writer stores every image's pooled regions after indexing, so a CLI search does not
    read the whole collection's regions again; a damaged cache is pooled again, not an error."""
    from mmsearch.query.proposals import POOLED_FILE, PooledRegions

    media, index = photos
    assert (index / POOLED_FILE).is_file()
    pooled: list[int] = []
    original = PooledRegions.map_images

    def counting(self, catalog, vector_ids, items):
        pooled.append(len(vector_ids))
        return original(self, catalog, vector_ids, items)

    monkeypatch.setattr(PooledRegions, "map_images", counting)
    with Library.open(index, create=False, readonly=True, settings=SMALL_N) as lib:
        cached = names(lib, "a person")
    assert sum(pooled) == 0 and set(cached[:2]) == PEOPLE
    (index / POOLED_FILE).write_bytes(b"not an npz")
    with Library.open(index, create=False, readonly=True, settings=SMALL_N) as lib:
        assert names(lib, "a person") == cached
    assert sum(pooled) == len(PHOTOS)
    Image.fromarray(skimage_data.astronaut()[:300, 100:400]).save(media / "portrait.png")
    with Library.open(index, create=False, settings=SMALL_N) as lib:
        lib.index([media])  # pools all 13 (the damaged cache is ignored) and stores them
    pooled.clear()
    with Library.open(index, create=False, readonly=True, settings=SMALL_N) as lib:
        assert "portrait.png" in names(lib, "a person")
    assert sum(pooled) == 0


def test_a_re_run_that_changed_nothing_neither_loads_the_model_nor_rewrites_the_pooled_regions(photos) -> None:
    from mmsearch.query.proposals import POOLED_FILE

    media, index = photos
    stamp = (index / POOLED_FILE).stat().st_mtime_ns
    with Library.open(index, create=False) as lib:
        report = lib.index([media])
        assert report.added == 0 and lib._encoder is None
    assert (index / POOLED_FILE).stat().st_mtime_ns == stamp


def test_past_the_size_limit_the_pooled_regions_propose_nothing_and_hold_nothing(photos, monkeypatch) -> None:
    from mmsearch.query import proposals

    _, index = photos
    monkeypatch.setattr(proposals, "POOLED_MAX_IMAGES", len(PHOTOS) - 1)
    with Library.open(index, create=False, readonly=True, settings=SMALL_N) as lib:
        assert not PEOPLE & set(names(lib, "a person", k=2))  # as without proposals
        assert lib._pooled_regions._images is None  # the cache was never read
