"""A video in the second stage: its best keyframes compete as the photos they show, and the
video takes the place and the moment of the best of them (`query/keyframes.py`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_rerank import WORDS, WordEncoder, add_item, regions_showing

from mmsearch.encoders.base import SEMANTIC, VIDEO_FRAME, VIDEO_SOUND, l2_normalise
from mmsearch.query.calibration import ScoreScale
from mmsearch.query.keyframes import SOUNDTRACK_COVERAGE, Keyframes
from mmsearch.query.rerank import Reranker
from mmsearch.store.catalog import Catalog
from mmsearch.store.catalog_items import ItemFacts


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(tmp_path / "catalog.db")
    yield cat
    cat.close()


def words_vector(*words: str) -> np.ndarray:
    row = np.zeros(len(WORDS), np.float32)
    for word in words:
        row[WORDS.index(word)] += 1.0
    return l2_normalise(row[None])[0]


def add_video(catalog: Catalog, name: str, shots: list[tuple[tuple[str, ...], tuple[str, ...]]]) -> int:
    """A video of 3-second shots, each (what its frame vector says, what its regions show)."""
    facts = ItemFacts(path=f"/films/{name}.mp4", root="/films", kind="video", size=1, mtime_ns=1, hash=name)
    rows = np.stack([words_vector(*seen) for seen, _ in shots])
    spans = [(3.0 * n, 3.0 * n + 3.0) for n in range(len(shots))]
    video, _, _ = catalog.write_item(
        facts, {SEMANTIC: rows}, spans={SEMANTIC: spans}, sources={SEMANTIC: [VIDEO_FRAME] * len(shots)}
    )
    catalog.write_frame_regions(video, [regions_showing(*shown) for _, shown in shots])
    return video


def test_the_moment_is_the_shot_the_reranker_judged_best_not_the_first_stages(catalog: Catalog) -> None:
    # Shot 0 is closest to the words in the first stage, but its regions show a car; shot 1's
    # regions show every word. The hit must point at shot 1 (3-6 s).
    video = add_video(catalog, "walk", [(("dog", "ball", "grass"), ("car", "street")),
                                        (("dog", "ball", "grass", "sky"), ("dog", "ball", "grass"))])
    photo = add_item(catalog, "sky", regions_showing())
    query = words_vector("dog", "ball", "grass")
    first_stage = [(video, 1.0, {SEMANTIC: 1.0}), (photo, 0.5, {SEMANTIC: 0.5})]
    frames = Keyframes(catalog, ScoreScale(), query, [video], "video")
    head = frames.expand(first_stage, keep=())
    assert {key for key, _, _ in head} == {(video, 0), (video, 1), photo}
    reranker = Reranker(catalog, WordEncoder)
    ranked, moments = frames.regroup(reranker.rerank("dog ball grass", None, head, head_size=len(head)))
    assert [item for item, _, _ in ranked] == [video, photo]  # one hit per video
    shot_rows = catalog.source_rows([video], SEMANTIC, VIDEO_FRAME)[video]
    assert moments[video] == shot_rows[1][0]
    assert catalog.vector_spans([moments[video]])[moments[video]] == (3.0, 6.0)


def test_a_video_found_by_its_soundtrack_keeps_its_place_beside_its_keyframes(catalog: Catalog) -> None:
    video = add_video(catalog, "bark", [(("sky",), ("sky",))])
    photo = add_item(catalog, "dog", regions_showing("dog"))
    frames = Keyframes(catalog, ScoreScale(), words_vector("dog"), [video], "video")
    head = frames.expand([(video, 0.8, {}), (photo, 0.6, {})], keep={video})
    assert [key for key, _, _ in head][:1] == [video] and (video, 0) in {key for key, _, _ in head}
    ranked, moments = frames.regroup(head)
    assert [item for item, _, _ in ranked] == [video, photo] and video not in moments


def test_a_soundtrack_covers_the_words_of_what_is_heard_not_of_what_is_seen(catalog: Catalog) -> None:
    """A film found by its soundtrack keeps its place only for words its sound covers: the
    second stage measures that (`Reranker.soundtrack_scores`, against `SOUNDTRACK_COVERAGE`)."""
    facts = ItemFacts(path="/films/bark.mp4", root="/films", kind="video", size=1, mtime_ns=1, hash="bark")
    windows = np.stack([words_vector("dog"), words_vector("dog", "sky")])
    video, _, _ = catalog.write_item(
        facts, {SEMANTIC: windows}, spans={SEMANTIC: [(0.0, 1.0), (1.0, 2.0)]},
        sources={SEMANTIC: [VIDEO_SOUND, VIDEO_SOUND]},
    )
    reranker = Reranker(catalog, WordEncoder)
    heard = reranker.soundtrack_scores("dog", [video])[video]
    seen = reranker.soundtrack_scores("dog ball grass car street", [video])[video]
    assert heard == pytest.approx(1.0) and seen == pytest.approx(0.2)
    assert seen < SOUNDTRACK_COVERAGE < heard
    assert reranker.soundtrack_scores("dog", [add_item(catalog, "photo", None)]) == {}
