"""Calibrated scores: every space's cosines on one 0-1 scale, so a cut-off means the same for
documents, photos and sounds, and fused queries keep a readable score."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import COLOURS, make_image
from test_audio_library import tone

from mmsearch import Library
from mmsearch.config import Settings
from mmsearch.encoders.registry import add_model_preset, list_models
from mmsearch.query.calibration import Logistic, ScoreScale, fit_logistic, scale_key

SEMANTIC_MAPS = {"text": (10.0, -6.0), "image": (12.0, -3.0), "audio-bridge": (8.0, -1.0)}


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


@pytest.fixture(scope="module")
def calibrated_model() -> str:
    hash_preset = next(p for p in list_models() if p.name == "hash-test")
    add_model_preset(
        "hash-test-calibrated", "hash", dict(hash_preset.options),
        cutoffs={"semantic": 0.5, "visual": 0.5, "acoustic": 0.5},
        calibration={"semantic": SEMANTIC_MAPS, "visual": {"image": (10.0, -5.0)}},
    )
    return "hash-test-calibrated"


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    root = tmp_path / "mixed"
    make_image(root / "red.png", COLOURS["red"])
    make_image(root / "blue.png", COLOURS["blue"])
    (root / "notes").mkdir()
    (root / "notes" / "bread.md").write_text("Knead the dough and bake the bread.\n")
    (root / "notes" / "sky.md").write_text("A clear blue sky over the sea.\n")
    tone(root / "sounds" / "whistle.flac", 3000, 2.0)
    return root


def by_name(hits) -> dict[str, object]:
    return {Path(h.path).name: h for h in hits}


def test_the_fit_recovers_a_known_map_and_weighs_both_classes_equally() -> None:
    rng = np.random.default_rng(0)
    truth = Logistic(12.0, -4.0)
    cosines = rng.uniform(-0.2, 0.9, 40_000)
    right_mask = rng.random(cosines.size) < [truth(c) for c in cosines]
    # Ten times more wrong matches than right ones, as in any search: the balanced fit must not
    # learn that prior (it would push every score down).
    wrong = cosines[~right_mask]
    right = np.repeat(cosines[right_mask], 10)[: len(wrong) // 10]
    fitted = fit_logistic(right, wrong)
    midpoint = -fitted.b / fitted.a
    assert fitted(midpoint) == pytest.approx(0.5)
    assert fitted.cosine_at(0.8) == pytest.approx((math.log(4) - fitted.b) / fitted.a)
    assert 0.0 < midpoint < 0.7
    with pytest.raises(ValueError, match="invert the ranking"):
        fit_logistic([0.1, 0.2], [0.5, 0.6])
    with pytest.raises(ValueError, match="one class is empty"):
        fit_logistic([], [0.5])


def test_which_map_a_vector_takes() -> None:
    assert scale_key("semantic", "image", None) == "image"  # the image label bridge
    assert scale_key("semantic", "image", "read-text") == "text"  # words read in the photo
    assert scale_key("semantic", "audio", None) == "text"  # a transcript
    assert scale_key("semantic", "audio", "audio-bridge") == "audio-bridge"
    assert scale_key("visual", "image", None) == "image"
    scale = ScoreScale({"semantic": {"text": (10.0, -6.0)}})
    assert scale.score("semantic", "text", None, 0.6) == pytest.approx(0.5)
    assert scale.score("acoustic", "audio", None, 0.7) == pytest.approx(0.7)  # no map: cosine
    assert not ScoreScale().calibrated and scale.calibrated


def test_scores_follow_each_kinds_map_and_the_cutoff_reads_them(
    tmp_path: Path, collection: Path, calibrated_model: str
) -> None:
    with Library.open(tmp_path / "raw", model="hash-test") as plain:
        plain.index([collection])
        raw = plain.search("ocean weather whistle", k=20, min_score=-1)
        assert not raw.calibrated
        cosine = {name: hit.score for name, hit in by_name(raw).items()}
    with Library.open(tmp_path / "cal", model=calibrated_model) as lib:
        lib.index([collection])
        hits = lib.search("ocean weather whistle", k=20, min_score=0)
        assert hits.calibrated
        got = by_name(hits)
        kinds = {"red.png": "image", "blue.png": "image", "bread.md": "text", "sky.md": "text",
                 "whistle.flac": "audio-bridge"}
        for name, key in kinds.items():
            a, b = SEMANTIC_MAPS[key]
            assert got[name].score == pytest.approx(sigmoid(a * cosine[name] + b), abs=1e-5), name
            assert 0 <= got[name].score <= 1
        # The order follows the calibrated scores, across kinds.
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        # min_score is on the same 0-1 scale for every kind, and the default cut-off is 0.5.
        kept = by_name(lib.search("ocean weather whistle", k=20, min_score=0.4))
        assert set(kept) == {n for n, h in got.items() if h.score >= 0.4}
        default = lib.search("ocean weather whistle", k=20)
        assert all(h.score >= 0.5 for h in default)
        assert default.cutoff == 0.5
        assert default.below_cutoff == sum(h.score < 0.5 for h in hits)


def test_a_text_and_image_query_scores_the_weighted_mean_of_its_spaces(
    tmp_path: Path, collection: Path, calibrated_model: str
) -> None:
    with Library.open(tmp_path / "cal", model=calibrated_model) as lib:
        lib.index([collection])
        example = collection / "blue.png"
        # (words that no file name or text holds: keyword evidence would lift the text score)
        hits = lib.search("ocean weather", image=example, k=10, min_score=0)
        assert hits.calibrated
        for hit in hits:
            semantic = hit.scores.get("semantic", 0.0)
            visual = hit.scores.get("visual", 0.0)  # documents have no visual vector: 0
            assert hit.score == pytest.approx((semantic + visual) / 2, abs=1e-5), hit.path
        assert Path(hits[0].path).name == "blue.png"  # matches in both spaces
        # Photos the text list did not reach still have their text score counted, not dropped.
        red = by_name(hits)["red.png"]
        assert "semantic" in red.scores and "visual" in red.scores
        # The cut-off applies to the fused score.
        cut = lib.search("ocean weather", image=example, k=10, min_score=0.6)
        assert all(h.score >= 0.6 for h in cut)
        assert {Path(h.path).name for h in cut} == {n for n, h in by_name(hits).items() if h.score >= 0.6}


def test_calibration_can_be_turned_off_for_raw_cosines(
    tmp_path: Path, collection: Path, calibrated_model: str
) -> None:
    with Library.open(tmp_path / "raw", model="hash-test") as plain:
        plain.index([collection])
        raw = {Path(h.path).name: h.score for h in plain.search("ocean weather", k=20, min_score=-1)}
    with Library.open(
        tmp_path / "cal", model=calibrated_model, settings=Settings(score_calibration=False)
    ) as lib:
        lib.index([collection])
        hits = lib.search("ocean weather", k=20)  # no default cut-off on the raw scale
        assert not hits.calibrated
        assert {Path(h.path).name: h.score for h in hits} == pytest.approx(raw)


def test_a_literal_match_adds_its_evidence_in_log_odds(
    tmp_path: Path, collection: Path, calibrated_model: str
) -> None:
    from mmsearch.query.calibration import logistic_with_evidence
    from mmsearch.query.fusion import KEYWORD_LOG_ODDS

    with Library.open(tmp_path / "cal", model=calibrated_model) as lib:
        lib.index([collection])
        hits = lib.search("bread", k=10, min_score=0)
        bread = by_name(hits)["bread.md"]
        assert Path(hits[0].path).name == "bread.md"
        assert bread.scores["keyword"] == 1.0
        assert bread.score == pytest.approx(
            logistic_with_evidence(bread.scores["semantic"], KEYWORD_LOG_ODDS), abs=1e-5
        )
        assert bread.scores["semantic"] < bread.score < 1


@pytest.mark.parametrize("name", ["offline-default", "offline-fast"])
def test_the_shipped_presets_map_every_kind_of_score_they_make(name: str) -> None:
    """A preset with some maps but not all would mix 0-1 scores with raw cosines in one list."""
    preset = next(p for p in list_models() if p.name == name)
    expected = {"semantic": {"image", "text", "audio-bridge"}, "visual": {"image"},
                "acoustic": {"audio"}}
    assert {space: set(keys) for space, keys in preset.calibration.items()} == expected
    assert preset.cutoffs == {"semantic": 0.5, "visual": 0.5, "acoustic": 0.5}
    for space, keys in expected.items():
        for key in keys:
            low, high = (Logistic(*preset.calibration[space][key])(c) for c in (-0.2, 0.9))
            assert 0 <= low < 0.5 < high <= 1, (space, key)
