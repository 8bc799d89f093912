"""The CLAP family (`clap:ORG/NAME`, `clap:/folder`) through the registry and the public API.

No pretrained CLAP can be fetched on the test machines, so the model is architecture-true with
random weights: a real `ClapConfig` shrunk to a few thousand parameters per tower, saved with
`save_pretrained` beside a real `ClapProcessor` (LAION's feature extractor settings, 48 kHz, and
a RoBERTa byte-level BPE tokenizer built in memory from the 256-symbol byte alphabet, no merges).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest

from mmsearch import Library, ModelMismatchError
from mmsearch.encoders.registry import default_cutoffs, resolve_model
from mmsearch.errors import ModelUnavailableError, UnknownModelError

RATE = 48_000
DIM = 16


def test_clap_names_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = resolve_model("clap:laion/clap-htsat-unfused")
    assert (spec.family, spec.options) == ("clap", {"model": "laion/clap-htsat-unfused"})
    assert resolve_model(f"clap:{tmp_path}").options == {"model": str(tmp_path.resolve())}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "saved").mkdir()
    # A relative folder that exists, or one written as a path, is a folder, made absolute.
    assert resolve_model("clap:saved").options == {"model": str(tmp_path / "saved")}
    assert resolve_model("clap:./other").options == {"model": str(tmp_path / "other")}
    assert default_cutoffs(spec) == {}  # no preset: the search's default cut-off, 0
    for bad in ("clap:", "clap:justaname", "clap:a/b/c", "clap:org/"):
        with pytest.raises(UnknownModelError, match="clap:ORG/NAME"):
            resolve_model(bad)


def make_clap_folder(folder: Path, *, seed: int = 0) -> str:
    """Save a tiny random-weight CLAP and its processor where `clap:/folder` loads them."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        RobertaTokenizer,
    )

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(ByteLevel.alphabet()))}
    tokenizer = RobertaTokenizer(vocab=vocab, merges=[], model_max_length=512)
    processor = ClapProcessor(feature_extractor=ClapFeatureExtractor(), tokenizer=tokenizer)
    config = ClapConfig(
        text_config={
            "vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 80,
            "projection_dim": DIM,
        },
        # HTSAT keeps LAION's input geometry (64 mel bins, spec_size 256, 4x4 patches, window
        # 8) so 10 s of 48 kHz audio fits; only its widths and depths shrink (2 stages of 1).
        audio_config={
            "patch_embeds_hidden_size": 16, "hidden_size": 32, "depths": [1, 1],
            "num_attention_heads": [1, 2], "num_hidden_layers": 2, "projection_dim": DIM,
            "enable_fusion": False,
        },
        projection_dim=DIM,
    )
    torch.manual_seed(seed)
    ClapModel(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder.resolve())


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_clap_folder(tmp_path_factory.mktemp("clap-model"))


def write_wav(path: Path, samples: np.ndarray) -> Path:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples.astype(np.float32), RATE)
    return path


def tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return 0.3 * np.sin(2 * np.pi * hz * t)


def noise(seconds: float, seed: int = 1) -> np.ndarray:
    return 0.2 * np.random.default_rng(seed).standard_normal(int(seconds * RATE))


@pytest.mark.models
def test_encoder_windows_and_streaming(clap_dir: str) -> None:
    from mmsearch.encoders.registry import load_encoder

    encoder = load_encoder(resolve_model(f"clap:{clap_dir}"), device="cpu")
    assert encoder.images is False and encoder.spaces == {"semantic": DIM}
    assert encoder.all_spaces() == {"semantic": DIM, "acoustic": DIM}
    assert encoder.audio is not None and encoder.audio.sample_rate == RATE
    assert 40 <= encoder.max_text_words() <= 55  # 77-token context
    texts = encoder.embed_texts(["a dog barking", "rain " * 400, ""])
    assert texts.shape == (3, DIM) and np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)

    audio = np.concatenate([tone(12, 440), noise(13)]).astype(np.float32)  # 25 s
    whole = encoder.audio.embed_recording([audio])
    assert whole.spans["acoustic"] == [(0.0, 10.0), (5.0, 15.0), (10.0, 20.0), (15.0, 25.0)]
    assert whole.spans["semantic"] == whole.spans["acoustic"]
    assert whole.vectors["semantic"].shape == (4, DIM) and not whole.sources
    assert whole.tags == [] and whole.transcript == []
    # Streamed in uneven blocks, the same windows get the same vectors.
    cuts = [0, 1_000, 300_000, 300_001, 700_000, len(audio)]
    streamed = encoder.audio.embed_recording(audio[a:b] for a, b in itertools.pairwise(cuts))
    assert streamed.spans == whole.spans
    assert np.allclose(streamed.vectors["acoustic"], whole.vectors["acoustic"], atol=1e-5)
    # A short recording is one window covering it; a slightly long one ends on its last sample.
    assert encoder.audio.embed_recording([tone(3, 220)]).spans["acoustic"] == [(0.0, 3.0)]
    assert encoder.audio.embed_recording([tone(12, 220)]).spans["acoustic"] == [
        (0.0, 10.0), (5.0, 12.0),
    ]
    assert encoder.audio.embed_recording([np.zeros(0, np.float32)]).vectors == {}


@pytest.mark.models
def test_index_and_search_with_a_local_clap_folder(tmp_path: Path, clap_dir: str) -> None:
    from PIL import Image

    media = tmp_path / "media"
    write_wav(media / "hum.wav", tone(4, 440))
    write_wav(media / "hiss.wav", noise(6))
    write_wav(media / "long.wav", np.concatenate([tone(12, 330), noise(13, seed=7)]))
    (media / "note.md").write_text("Field recording notes: birdsong at dawn, then rain.")
    Image.new("RGB", (32, 32), (200, 40, 40)).save(media / "red.png")
    model = f"clap:{clap_dir}"
    with Library.open(tmp_path / "index", model=model) as lib:
        report = lib.index([media])
        assert (report.added, report.failed) == (4, 1), report.failures
        (path, reason), = report.failures
        assert path.endswith("red.png") and "no image encoder" in reason
        assert lib.stats().items == {"audio": 3, "text": 1}
        # Random weights mean nothing, but text finds sounds directly (same space) and notes.
        hits = lib.search("anything", k=10, min_score=-1)
        assert {h.kind for h in hits} == {"audio", "text"} and len(hits) == 4
        # An indexed example uses its stored vector: it finds itself first.
        hits = lib.search(audio=media / "hiss.wav", k=3, min_score=-1)
        assert Path(hits[0].path).name == "hiss.wav" and hits[0].score > 0.999
        hits = lib.search(audio=media / "long.wav", k=3, min_score=-1)
        top = hits[0]
        assert Path(top.path).name == "long.wav" and top.duration == pytest.approx(25, abs=0.05)
        assert top.start is not None and top.end is not None
        assert top.end - top.start == pytest.approx(10, abs=0.01) and top.end <= 25.01
    with pytest.raises(ModelMismatchError):
        Library.open(tmp_path / "index", model=f"clap:{tmp_path / 'other'}")


@pytest.mark.models
def test_broken_folder_is_unavailable(tmp_path: Path) -> None:
    from mmsearch.encoders.registry import load_encoder

    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match="save_pretrained"):
        load_encoder(resolve_model(f"clap:{tmp_path / 'empty'}"), device="cpu")
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_encoder(resolve_model(f"clap:{tmp_path / 'missing'}"), device="cpu")


@pytest.mark.parametrize("offline", [True, False])
def test_missing_hub_model_fails_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: bool
) -> None:
    # Not in the cache and no hub (offline flag, or an endpoint that never resolves): a clear
    # error within seconds, not the hub client's minutes of retries.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.mmsearch-test.invalid")
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    started = time.monotonic()
    with (
        pytest.raises(ModelUnavailableError) as info,
        Library.open(tmp_path / "index", model="clap:org/missing-model") as lib,
    ):
        lib.search("a dog barking")  # the model is loaded when first needed
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "org/missing-model" in message and "huggingface-cli download org/missing-model" in message
    assert "clap:/path/to/DIR" in message


@pytest.mark.models
def test_a_model_with_one_family_per_modality(tmp_path: Path, clap_dir: str) -> None:
    """`hash-test+clap:/dir`: images and documents from the first part, sound from CLAP, whose
    own text space is searched beside `semantic` for text queries and fused."""
    from conftest import COLOURS, make_image

    from mmsearch.encoders.composite import AUDIO_TEXT

    media = tmp_path / "media"
    make_image(media / "red.png", COLOURS["red"])
    make_image(media / "blue.png", COLOURS["blue"])
    (media / "note.md").write_text("A red bicycle by the river.")
    write_wav(media / "hiss.wav", noise(6))
    write_wav(media / "hum.wav", tone(4, 440))
    model = f"hash-test+clap:{clap_dir}"
    with Library.open(tmp_path / "index", model=model) as lib:
        report = lib.index([media])
        assert (report.added, report.failed) == (5, 0), report.failures
        assert set(lib.stats().spaces) == {"semantic", "visual", AUDIO_TEXT, "acoustic"}
        assert Path(lib.search("red", k=1)[0].path).name == "red.png"  # the hash part's text
        hits = lib.search("red", k=10, min_score=-1)
        assert {h.kind for h in hits} == {"image", "text", "audio"}  # both text spaces, fused
        assert set(hits[0].scores) >= {"semantic"}
        hits = lib.search(audio=media / "hiss.wav", k=1)
        assert Path(hits[0].path).name == "hiss.wav"
        assert Path(lib.search(image=media / "blue.png", k=1)[0].path).name == "blue.png"
    with pytest.raises(ModelMismatchError):
        Library.open(tmp_path / "index", model="hash-test")
