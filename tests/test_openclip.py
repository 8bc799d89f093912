"""OpenCLIP encoder tests on an architecture-true model with random weights (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("open_clip")
skimage_data = pytest.importorskip("skimage.data")

from openclip_helpers import (
    SMALL_ARCH,
    SMALL_ARCH_DIM,
    shared_checkpoint,
    shared_model_cache,
)

from mmsearch.encoders import load_encoder, resolve_model
from mmsearch.encoders.base import SEMANTIC, VISUAL
from mmsearch.errors import ModelUnavailableError, UnknownModelError


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    return shared_checkpoint(tmp_path_factory)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shared_model_cache(tmp_path_factory))


@pytest.fixture(scope="session")
def encoder(checkpoint: str, model_cache: Path):
    spec = resolve_model(f"open_clip:{SMALL_ARCH}@{checkpoint}")
    return load_encoder(spec, device="cpu", cache_dir=model_cache)


def _photos() -> list[Image.Image]:
    return [Image.fromarray(skimage_data.astronaut()), Image.fromarray(skimage_data.chelsea())]


def _assert_unit_rows(vectors: np.ndarray, rows: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (rows, SMALL_ARCH_DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_spec_and_spaces(encoder, checkpoint: str) -> None:
    assert encoder.spec.family == "open_clip"
    assert encoder.spec.options == {"architecture": SMALL_ARCH, "pretrained": checkpoint}
    assert dict(encoder.spaces) == {SEMANTIC: SMALL_ARCH_DIM, VISUAL: SMALL_ARCH_DIM}
    assert 40 <= encoder.max_text_words() <= 60  # CLIP's 77-token context


def test_prepare_image_matches_open_clip_transform(encoder) -> None:
    import open_clip

    prepared = encoder.prepare_image(_photos()[0])
    assert prepared.dtype == np.uint8  # normalised only when the batch runs (memory)
    assert prepared.shape == (3, 224, 224)
    # The torch-free transform matches open_clip's own, on landscape, portrait, small and
    # exactly-sized images.
    assert encoder.export_dir is not None
    _, _, transform = open_clip.create_model_and_transforms(SMALL_ARCH)
    photos = _photos() + [_photos()[1].resize((150, 330)), _photos()[0].resize((224, 224))]
    for photo in photos:
        expected = transform(photo).numpy()
        got = encoder._preprocess.normalise(encoder.prepare_image(photo)[None])[0]
        np.testing.assert_allclose(got, expected, atol=1e-5)
    # Greyscale, palette and RGBA inputs become RGB first.
    for mode in ("L", "P", "RGBA"):
        assert encoder.prepare_image(_photos()[1].convert(mode)).shape == (3, 224, 224)


def test_embed_images_unit_rows_and_deterministic(encoder) -> None:
    photos = _photos()
    prepared = [encoder.prepare_image(p) for p in photos]
    out = encoder.embed_images(prepared)
    assert set(out) >= {SEMANTIC, VISUAL}
    for space in (SEMANTIC, VISUAL):
        _assert_unit_rows(out[space], 2)
    assert not np.allclose(out[SEMANTIC][0], out[SEMANTIC][1])

    # The same image embeds the same, alone or in another batch position.
    again = encoder.embed_images([encoder.prepare_image(photos[1]), prepared[0]])
    np.testing.assert_allclose(again[SEMANTIC][1], out[SEMANTIC][0], atol=1e-5)
    np.testing.assert_allclose(again[VISUAL][0], out[VISUAL][1], atol=1e-5)


def test_embed_texts_unit_rows(encoder) -> None:
    texts = ["an astronaut", "a cat on a rug", "x " * 500]  # the last exceeds the context
    vectors = encoder.embed_texts(texts)
    _assert_unit_rows(vectors, 3)
    np.testing.assert_allclose(encoder.embed_texts(["an astronaut"])[0], vectors[0], atol=1e-5)
    assert encoder.embed_texts([]).shape == (0, SMALL_ARCH_DIM)
    assert encoder.embed_images([])[SEMANTIC].shape == (0, SMALL_ARCH_DIM)


def test_missing_checkpoint_names_the_path(tmp_path) -> None:
    missing = tmp_path / "nowhere" / "ckpt.pt"
    spec = resolve_model(f"open_clip:{SMALL_ARCH}@{missing}")
    with pytest.raises(ModelUnavailableError) as info:
        load_encoder(spec, device="cpu")
    assert str(missing) in str(info.value)


def test_checkpoint_for_another_architecture(checkpoint: str, tmp_path) -> None:
    spec = resolve_model(f"open_clip:ViT-S-32@{checkpoint}")
    with pytest.raises(ModelUnavailableError, match="ViT-S-32"):
        load_encoder(spec, device="cpu", cache_dir=tmp_path)
    assert not list((tmp_path / "open_clip").glob("*/meta.json"))  # nothing half-exported


def _empty_hub_cache(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))


def test_tag_without_cached_weights_offline_mode(monkeypatch, tmp_path) -> None:
    # With HF_HUB_OFFLINE this must fail at once (no hub request at all), not after minutes
    # of retries. No timing assertion: the point is that it raises a helpful error.
    from huggingface_hub import constants

    _empty_hub_cache(monkeypatch, tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    spec = resolve_model("open_clip:ViT-B-32/laion2b_s34b_b79k")
    with pytest.raises(ModelUnavailableError) as info:
        load_encoder(spec, device="cpu")
    message = str(info.value)
    assert "ViT-B-32" in message and "laion2b_s34b_b79k" in message
    assert "Hugging Face cache" in message
    assert "open_clip:ViT-B-32@/path/to/checkpoint" in message


def test_tag_without_cached_weights_unreachable_hub(monkeypatch, tmp_path) -> None:
    # No offline flag, but the hub cannot be reached: the connectivity probe must fail fast
    # (seconds, not the hub client's ~25 s of retries per file). `.invalid` never resolves.
    from huggingface_hub import constants

    _empty_hub_cache(monkeypatch, tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.mmsearch-test.invalid")
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    spec = resolve_model("open_clip:ViT-B-32/laion2b_s34b_b79k")
    with pytest.raises(ModelUnavailableError, match="Hugging Face cache"):
        load_encoder(spec, device="cpu")


def test_tag_with_cached_weights_loads_offline(monkeypatch, tmp_path, checkpoint: str) -> None:
    # A tag whose weights are already in the Hugging Face cache loads with the hub offline,
    # and gets the preprocessing its tag prescribes (here: no normalisation, pixels in [0, 1]).
    import open_clip.pretrained
    from huggingface_hub import constants

    _empty_hub_cache(monkeypatch, tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf-cache" / "models--mmsearch-test--tiny-clip"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_pytorch_model.bin").symlink_to(checkpoint)
    tag_cfg = {
        "url": "",
        "hf_hub": "mmsearch-test/tiny-clip/",
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "interpolation": "bilinear",
        "resize_mode": "squash",
    }
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, SMALL_ARCH, {"cached_test": tag_cfg})
    # This test is about resolving a tag; the torch path spares it a second export.
    monkeypatch.setenv("MMSEARCH_OPENCLIP_BACKEND", "torch")

    encoder = load_encoder(resolve_model(f"open_clip:{SMALL_ARCH}/cached_test"), device="cpu")
    assert encoder.checkpoint == str(snapshot / "open_clip_pytorch_model.bin")
    prepared = encoder.prepare_image(_photos()[0])
    assert prepared.shape == (3, 224, 224)
    assert prepared.min() >= 0.0 and prepared.max() <= 1.0
    _assert_unit_rows(encoder.embed_texts(["an astronaut"]), 1)


def test_unknown_architecture() -> None:
    spec = resolve_model("open_clip:ViT-Q-99@/tmp/ckpt.pt")
    with pytest.raises(UnknownModelError) as info:
        load_encoder(spec, device="cpu")
    assert "ViT-Q-99" in str(info.value)
    assert "ViT-" in str(info.value).replace("ViT-Q-99", "")  # suggests real ones


def test_unknown_tag_lists_known_tags() -> None:
    spec = resolve_model("open_clip:ViT-B-32/no_such_tag")
    with pytest.raises(UnknownModelError, match="laion2b_s34b_b79k"):
        load_encoder(spec, device="cpu")
