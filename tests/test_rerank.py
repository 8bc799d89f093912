"""The second stage: region codes, the late-interaction reranker, its catalog storage."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from mmsearch.encoders.base import SEMANTIC, VISUAL, Encoder, ModelSpec, l2_normalise
from mmsearch.encoders.regions import LABEL_TOPK, PATCH_INT8, RegionCodes, pooled_patches
from mmsearch.query.proposals import TunedAdapter
from mmsearch.query.rerank import REGION_WEIGHT, RERANK, Reranker
from mmsearch.query.words import content_words
from mmsearch.store.catalog import Catalog
from mmsearch.store.catalog_items import ItemFacts
from mmsearch.store.catalog_schema import SCHEMA_VERSION

WORDS = ["dog", "ball", "grass", "car", "street", "sky"]


class WordEncoder(Encoder):
    """Stands in for a model: each word is its own axis; a region code's ids name words."""

    spec = ModelSpec("words", "test", {})
    spaces: ClassVar[dict[str, int]] = {SEMANTIC: len(WORDS)}

    def prepare_image(self, image):
        raise NotImplementedError

    def embed_images(self, batch):
        raise NotImplementedError

    def embed_texts(self, texts):
        rows = np.zeros((len(texts), len(WORDS)), np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                if word in WORDS:
                    rows[i, WORDS.index(word)] = 1.0
        return l2_normalise(rows)

    def region_vectors(self, codes):
        if codes.format != LABEL_TOPK:
            return super().region_vectors(codes)
        ids, weights = codes.label_topk()
        out = np.zeros((len(ids), len(WORDS)), np.float32)
        for r, (row_ids, row_w) in enumerate(zip(ids, weights)):
            out[r, row_ids] += row_w
        return l2_normalise(out)


def regions_showing(*words: str) -> RegionCodes:
    """Eight regions: one per word given, the rest sky."""
    names = list(words) + ["sky"] * (8 - len(words))
    ids = np.array([[WORDS.index(n)] for n in names])
    return RegionCodes.from_label_topk(ids, np.ones_like(ids, dtype=np.float32))


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(tmp_path / "catalog.db")
    yield cat
    cat.close()


def add_item(catalog: Catalog, name: str, regions: RegionCodes | None) -> int:
    facts = ItemFacts(path=f"/photos/{name}.jpg", root="/photos", kind="image", size=1, mtime_ns=1, hash=name)
    vectors = {SEMANTIC: np.ones((1, 4), np.float32) / 2, VISUAL: np.ones((1, 4), np.float32) / 2}
    item, _, _ = catalog.write_item(facts, vectors)
    catalog.write_regions(item, regions)
    return item


def test_region_codes_round_trip_in_3_kb_for_81_regions() -> None:
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 1000, (81, 10))
    weights = rng.dirichlet(np.ones(10), 81).astype(np.float32)
    codes = RegionCodes.from_label_topk(ids, weights)
    assert codes.format == LABEL_TOPK and len(codes.data) == 81 * 10 * 4
    back_ids, back_weights = codes.label_topk()
    assert np.array_equal(back_ids, ids)
    assert np.allclose(back_weights, weights, atol=1e-3)


def test_patch_vectors_keep_their_direction_in_8_bits() -> None:
    rng = np.random.default_rng(2)
    vectors = l2_normalise(rng.normal(size=(16, 512)))
    codes = RegionCodes.from_vectors(vectors)
    assert codes.format == PATCH_INT8 and len(codes.data) == 16 * (512 + 2)
    back = codes.vectors()
    assert np.min(np.sum(back * vectors, axis=1)) > 0.999
    with pytest.raises(ValueError, match="expected"):
        RegionCodes(PATCH_INT8, 2, 4, b"\x00" * 5).vectors()


def test_patch_grids_pool_into_at_most_4_by_4_regions() -> None:
    """7 x 7 patches (ViT-B/32 at 224) pool into 16 overlapping cells; a 3 x 3 grid stays 9."""
    tokens = np.zeros((1, 49, len(WORDS)), np.float32)
    tokens[0, :, WORDS.index("sky")] = 1.0
    tokens[0, 0, :] = 0.0
    tokens[0, 0, WORDS.index("dog")] = 1.0  # the top-left patch only
    regions = pooled_patches(tokens)[0]
    assert regions.count == 16
    vectors = regions.vectors()
    dog = vectors[:, WORDS.index("dog")]
    # Only the top-left cell (rows and columns 0-1) holds the dog patch: 1 of its 4 patches.
    assert dog[0] > 0.3 and np.allclose(dog[1:], 0.0)
    assert pooled_patches(np.ones((2, 9, 8), np.float32))[1].count == 9
    with pytest.raises(ValueError, match="square"):
        pooled_patches(np.ones((1, 10, 8), np.float32))


def test_an_image_stored_as_patch_vectors_is_reranked_by_them(catalog: Catalog) -> None:
    def patches(*words: str) -> RegionCodes:
        return RegionCodes.from_vectors(WordEncoder().embed_texts(list(words) + ["sky"] * (4 - len(words))))

    sky = add_item(catalog, "sky", patches())
    car = add_item(catalog, "car", patches("car"))
    dog = add_item(catalog, "dog", patches("dog", "ball"))
    first = [(sky, 0.6, {}), (dog, 0.55, {}), (car, 0.5, {})]
    ranked = Reranker(catalog, WordEncoder).rerank("dog ball", None, first)
    assert ranked[0][0] == dog and RERANK in ranked[0][2]


def test_region_codes_reject_what_they_cannot_hold() -> None:
    with pytest.raises(ValueError, match="16 bits"):
        RegionCodes.from_label_topk(np.array([[70000]]), np.array([[1.0]]))
    with pytest.raises(ValueError, match="expected"):
        RegionCodes(LABEL_TOPK, 2, 2, b"\x00" * 5).label_topk()


def test_content_words_drop_words_that_name_nothing() -> None:
    assert content_words("A dog is running with a ball on the grass") == ["dog", "running", "ball", "grass"]
    assert content_words("the of a") == []


def test_an_image_whose_regions_show_every_word_rises_above_those_showing_fewer(catalog: Catalog) -> None:
    fillers = [add_item(catalog, f"sky{i}", regions_showing()) for i in range(4)]
    car = add_item(catalog, "car", regions_showing("car", "street"))
    half = add_item(catalog, "half", regions_showing("dog"))
    dog = add_item(catalog, "dog", regions_showing("dog", "ball", "grass"))
    first = [(f, 0.55 - i / 100, {}) for i, f in enumerate(fillers)]
    first += [(car, 0.51, {}), (half, 0.50, {}), (dog, 0.49, {})]
    reranker = Reranker(catalog, WordEncoder, top_n=50)
    ranked = reranker.rerank("a dog with a ball on grass", None, first)
    order = [item for item, _, _ in ranked]
    assert order.index(dog) < 2  # from last to the top two
    assert order.index(dog) < order.index(half) < order.index(car)
    raw = {item: per[RERANK] for item, _, per in ranked}
    assert raw[dog] > raw[half] > raw[car]
    scores = [score for _, score, _ in ranked]
    assert scores == sorted(scores, reverse=True)
    # Rescored on the first stage's scale: same mean over the candidates.
    assert np.isclose(np.mean(scores), np.mean([s for _, s, _ in first]))


def test_only_the_top_n_move_and_items_without_regions_keep_their_place(catalog: Catalog) -> None:
    old = add_item(catalog, "old", None)  # indexed before regions existed
    sky = add_item(catalog, "sky", regions_showing())
    dog = add_item(catalog, "dog", regions_showing("dog"))
    late = add_item(catalog, "late", regions_showing("dog", "dog", "dog", "dog"))
    first = [(old, 0.9, {}), (sky, 0.5, {}), (dog, 0.45, {}), (late, 0.1, {})]
    ranked = Reranker(catalog, WordEncoder, top_n=3).rerank("dog", None, first)
    order = [item for item, _, _ in ranked]
    assert order == [old, dog, sky, late]  # `late` is past the N: untouched, however well it matches
    assert RERANK not in ranked[0][2]


def test_a_query_without_content_words_changes_nothing(catalog: Catalog) -> None:
    a = add_item(catalog, "a", regions_showing("dog"))
    b = add_item(catalog, "b", regions_showing("car"))
    first = [(a, 0.5, {}), (b, 0.4, {})]
    assert Reranker(catalog, WordEncoder).rerank("the of", None, first) == first


def test_a_tuned_adapter_survives_saving_and_its_weights_shape_the_fusion(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    adapter = TunedAdapter(
        rng.standard_normal(8).astype(np.float32), np.ones(8, np.float32),
        rng.standard_normal((8, 6)).astype(np.float32), np.zeros(6, np.float32), 2.0, 1.0,
        own_vector_ids=np.array([4, 9], np.int64), own_vectors=rng.standard_normal((2, 6)).astype(np.float32),
    )
    adapter.save(tmp_path, {"captions": 3})
    loaded = TunedAdapter.load(tmp_path)
    assert loaded is not None and loaded.weight == 2.0
    x = rng.standard_normal((3, 8)).astype(np.float32)
    assert np.allclose(loaded.embed(x), adapter.embed(x), atol=1e-6)
    # Vectors the map was fitted on get their stored left-out vectors; others are mapped.
    got = loaded.embed(x, [9, 5, 4])
    assert np.allclose(got[0], l2_normalise(adapter.own_vectors[1:2])[0], atol=1e-6)
    assert np.allclose(got[2], l2_normalise(adapter.own_vectors[0:1])[0], atol=1e-6)
    assert np.allclose(got[1], adapter.embed(x)[1], atol=1e-6)
    assert '"captions": 3' in (tmp_path / "rerank.json").read_text()
    assert TunedAdapter.load(tmp_path / "nowhere") is None


def test_damaged_tuned_weights_say_what_to_do(tmp_path: Path) -> None:
    from mmsearch.errors import IndexFormatError

    (tmp_path / "rerank.npz").write_bytes(b"not a zip file")
    with pytest.raises(IndexFormatError, match="mmsearch tune"):
        TunedAdapter.load(tmp_path)


def test_deleting_an_item_deletes_its_regions(catalog: Catalog) -> None:
    item = add_item(catalog, "dog", regions_showing("dog"))
    assert set(catalog.item_regions([item])) == {item}
    catalog.delete_items([item])
    assert catalog.item_regions([item]) == {}


def test_a_schema_4_catalog_gains_the_regions_table_and_keeps_its_items(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    cat = Catalog(path)
    item = add_item(cat, "old", None)
    cat.db.execute("DROP TABLE regions")
    # and what schema 6 added (videos), so the catalog is schema 4's
    cat.db.execute("DROP TABLE frame_regions")
    cat.db.execute("ALTER TABLE items DROP COLUMN frame_rate")
    cat.db.execute("ALTER TABLE items DROP COLUMN rotation")
    cat.db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    cat.db.conn.commit()
    cat.close()
    reopened = Catalog(path)
    assert reopened.schema_version() == SCHEMA_VERSION
    assert reopened.item_regions([item]) == {}
    reopened.write_regions(item, regions_showing("dog"))
    assert reopened.item_regions([item])[item].count == 8
    reopened.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM items").fetchone() == (1,)


def test_keyword_matches_keep_their_first_stage_places() -> None:
    from mmsearch.query.rerank import keep_places

    first_order = [1, 2, 3, 4]  # 1 and 3 matched the query's words by name
    reranked = [(4, 0.9, {}), (3, 0.8, {}), (2, 0.7, {}), (1, 0.6, {})]
    kept = keep_places(first_order, reranked, {1, 3})
    assert [item for item, _, _ in kept] == [3, 4, 1, 2]  # matches in slots 1 and 3, reordered
    assert [score for _, score, _ in kept] == [0.9, 0.8, 0.7, 0.6]  # each place's score


def test_the_tuned_adapter_matches_the_querys_words_as_well_as_the_whole_query(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole query's vector points at "sky" while its one content word is "dog": the image
    showing both rises above the sky-only one once the words count, not before."""
    from mmsearch.query import rerank

    def add(name: str, visual: dict[str, float]) -> int:
        vector = np.zeros((1, len(WORDS)), np.float32)
        for word, value in visual.items():
            vector[0, WORDS.index(word)] = value
        facts = ItemFacts(path=f"/p/{name}.jpg", root="/p", kind="image", size=1, mtime_ns=1, hash=name)
        item, _, _ = catalog.write_item(facts, {VISUAL: vector, SEMANTIC: vector})
        return item

    both, sky, dog = add("both", {"dog": 0.6, "sky": 0.8}), add("sky", {"sky": 1.0}), add("dog", {"dog": 1.0})
    n = len(WORDS)
    adapter = TunedAdapter(np.zeros(n, np.float32), np.ones(n, np.float32), np.eye(n, dtype=np.float32),
                           np.zeros(n, np.float32), weight=1.0, region_weight=0.0)
    reranker = Reranker(catalog, WordEncoder, adapter=adapter)
    query_vector = WordEncoder().embed_texts(["sky"])[0]
    items = [both, sky, dog]

    def adapted() -> dict[int, float]:
        z, _ = reranker.scores("dog", query_vector, items)[rerank.ADAPTED]
        return dict(zip(items, z))

    with_words = adapted()
    assert with_words[both] > with_words[sky] > with_words[dog]
    monkeypatch.setattr(rerank, "ADAPTER_WORD_SHARE", 0.0)
    whole_only = adapted()
    assert whole_only[sky] > whole_only[both] > whole_only[dog]


def test_an_images_wider_label_mix_stands_in_for_the_first_stage_in_the_rerank(catalog: Catalog) -> None:
    """Regions equal for all, first stage wrong: the whole image's stored wider mix decides;
    records without one (older indexes) keep the first stage's order."""

    def codes(image_word: str | None) -> RegionCodes:
        ids = np.array([[WORDS.index("sky")]] * 8)
        image = None if image_word is None else (np.array([WORDS.index(image_word)]), np.ones(1))
        return RegionCodes.from_label_topk(ids, np.ones_like(ids, dtype=np.float32), image=image)

    record = codes("dog")
    assert record.label_topk()[0].shape == (8, 1)
    assert record.image_topk()[0].tolist() == [WORDS.index("dog")]
    assert codes(None).image_topk() is None
    query = WordEncoder().embed_texts(["dog"])[0]
    for stored, expected_first in (("new", "dog"), ("old", "car")):
        names = ["car", "sky", "dog"]
        items = {n: add_item(catalog, f"{stored}-{n}", codes(n if stored == "new" else None)) for n in names}
        first = [(items[n], 0.6 - i / 10, {}) for i, n in enumerate(names)]
        ranked = Reranker(catalog, WordEncoder).rerank("dog", query, first)
        by_item = {item: name for name, item in items.items()}
        assert by_item[ranked[0][0]] == expected_first


def test_the_wider_mix_reorders_images_among_themselves_but_keeps_their_footing_against_sounds(
    catalog: Catalog,
) -> None:
    """In a list that mixes a sound (no regions) with photos, the wider mix reorders the
    photos, and the photos as a group keep the mean score the first stage gave them."""
    sky_regions = np.array([[WORDS.index("sky")]] * 8)

    def photo(name: str) -> int:
        codes = RegionCodes.from_label_topk(
            sky_regions, np.ones_like(sky_regions, dtype=np.float32),
            image=(np.array([WORDS.index(name)]), np.ones(1)),
        )
        return add_item(catalog, name, codes)

    sound = add_item(catalog, "bark", None)
    photos = {name: photo(name) for name in ("car", "sky", "dog")}
    first = [(sound, 0.9, {})] + [(photos[n], 0.5 - i / 10, {}) for i, n in enumerate(photos)]
    query = WordEncoder().embed_texts(["dog"])[0]
    ranked = Reranker(catalog, WordEncoder).rerank("dog", query, first)
    order = [item for item, _, _ in ranked]
    assert order[0] == sound and order[1] == photos["dog"]
    score = {item: value for item, value, _ in ranked}
    # Rescored as first-stage mean + spread * fused / (1 + region weight); the photos' fused
    # values keep their first-stage mean (the regions, all sky, add nothing), so:
    mean_first = np.mean([0.9, 0.5, 0.4, 0.3])
    expected = mean_first + (np.mean([0.5, 0.4, 0.3]) - mean_first) / (1 + REGION_WEIGHT)
    assert np.isclose(np.mean([score[i] for i in photos.values()]), expected)


def test_proposed_images_take_images_places_and_leave_the_items_without_regions_where_they_were(
    catalog: Catalog,
) -> None:
    """A proposal the regions rate highly comes first among the images, but a sound (no
    regions: the reranker cannot judge it) keeps the place the N alone gives it."""

    def photo(*words: str) -> RegionCodes:  # regions, and the whole image's mix of its words
        ids = np.array([[WORDS.index(w)] for w in [*words, *["sky"] * (8 - len(words))]])
        whole = np.array([WORDS.index(w) for w in (*words, "sky")])
        return RegionCodes.from_label_topk(
            ids, np.ones_like(ids, dtype=np.float32), image=(whole, np.ones(len(whole), np.float32))
        )

    sky = add_item(catalog, "sky", photo())
    car = add_item(catalog, "car", photo("car"))
    sound = add_item(catalog, "bark", None)
    dog = add_item(catalog, "dog", photo("dog", "dog", "dog"))
    first = [(sky, 0.9, {}), (car, 0.85, {}), (sound, 0.5, {})]
    reranker = Reranker(catalog, WordEncoder)
    query = WordEncoder().embed_texts(["dog"])[0]
    alone = [item for item, _, _ in reranker.rerank("dog", query, first)]
    ranked = reranker.rerank("dog", query, first, proposed=[(dog, 0.3, {})])
    order = [item for item, _, _ in ranked]
    assert order.index(sound) == alone.index(sound)
    assert next(item for item in order if item != sound) == dog
    scores = [score for _, score, _ in ranked]
    assert scores == sorted(scores, reverse=True)


def test_a_video_is_reranked_by_its_best_keyframe(catalog: Catalog) -> None:
    """Each keyframe is judged as an image would be; the video takes its best frame's score."""
    dog_photo = add_item(catalog, "dog", regions_showing("dog", "ball"))
    sky_photo = add_item(catalog, "sky", regions_showing())
    facts = ItemFacts(path="/photos/walk.mp4", root="/photos", kind="video", size=1, mtime_ns=1, hash="walk")
    video, _, _ = catalog.write_item(facts, {SEMANTIC: np.ones((2, 4), np.float32) / 2})
    catalog.write_frame_regions(video, [regions_showing("car"), regions_showing("dog", "ball")])
    assert [c.count for c in catalog.item_frame_regions([video])[video]] == [8, 8]
    reranker = Reranker(catalog, WordEncoder)
    scores = reranker.item_scores("dog ball", None, [dog_photo, sky_photo, video])[RERANK]
    assert scores[video] == pytest.approx(scores[dog_photo])  # its second shot shows them
    assert scores[video] > scores[sky_photo]
    ranked = reranker.rerank("dog ball", None, [(sky_photo, 0.6, {}), (video, 0.5, {}), (dog_photo, 0.4, {})])
    assert ranked[0][0] == video  # lifted past the sky photo the first stage preferred
