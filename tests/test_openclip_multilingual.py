"""OpenCLIP with a multilingual text tower: `xlm-roberta-base-ViT-B-32` indexes and answers a
Chinese query without torch, from an XLM-R tokenizer found offline; an English OpenCLIP model
refuses the same query in one line that names both multilingual models.

No pretrained checkpoint can be downloaded here, so the model is the real architecture (ViT-B/32
image tower, the full xlm-roberta-base text tower from its hub config) with random weights, and
the tokenizer an XLM-R style SentencePiece model learnt from a few hundred words
(`openclip_helpers.make_xlmr_hub_cache`), both in a Hugging Face cache of the test's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("open_clip")
pytest.importorskip("onnxscript")
pytest.importorskip("transformers")
skimage_data = pytest.importorskip("skimage.data")

from openclip_helpers import (
    SMALL_ARCH,
    XLMR_ARCH,
    XLMR_HF_NAME,
    make_random_checkpoint,
    make_xlmr_hub_cache,
    shared_checkpoint,
    shared_model_cache,
)

from mmsearch.encoders import load_encoder, resolve_model
from mmsearch.encoders.openclip_export import FIDELITY

TEXTS = [
    "一只猫在沙发上睡觉",
    "a photo of a cat sleeping on the sofa",
    "怎么烤面包？ how do I bake bread",
    "  une tasse de café &amp; 東京\t",
    "",
    "面包 " * 80,  # longer than the 77-token context
]
BREAD_NOTE = "酸面团面包：把面粉、水和盐与酵头混合，让面团发酵，然后烤成面包。\n"
OPENCLIP_SUGGESTION = "open_clip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The test's Hugging Face cache, in use and offline (as `HF_HUB_OFFLINE=1` makes it)."""
    from huggingface_hub import constants

    cache = make_xlmr_hub_cache(tmp_path_factory.getbasetemp() / "openclip-xlmr" / "hf")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_CACHE", str(cache))
        patch.setattr(constants, "HF_HUB_OFFLINE", True)
        yield cache


@pytest.fixture(scope="module")
def checkpoint(hub: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.getbasetemp() / "openclip-xlmr" / "ckpt.pt"
    if path.is_file():
        return str(path)
    return make_random_checkpoint(XLMR_ARCH, path)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shared_model_cache(tmp_path_factory))


@pytest.fixture(scope="module")
def model_name(checkpoint: str) -> str:
    return f"open_clip:{XLMR_ARCH}@{checkpoint}"


@pytest.fixture(scope="module")
def encoder(hub: Path, model_name: str, cache: Path):
    """The model as mmsearch runs it on a CPU: its towers exported to ONNX (once)."""
    encoder = load_encoder(resolve_model(model_name), cache_dir=cache)
    assert encoder.export_dir is not None, "the XLM-R model fell back to torch"
    return encoder


@pytest.fixture(scope="module")
def torch_model(hub: Path, checkpoint: str):
    import open_clip

    model, _, transform = open_clip.create_model_and_transforms(XLMR_ARCH, pretrained=checkpoint)
    return model.eval(), transform, open_clip.get_tokenizer(XLMR_ARCH)


@pytest.fixture(scope="module")
def index(encoder, model_name: str, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three photos and a Chinese note, indexed with the XLM-R model."""
    from mmsearch import Library

    root = tmp_path_factory.mktemp("xlmr-index")
    media = root / "media"
    media.mkdir()
    for name, file in {"chelsea": "cat.jpg", "coffee": "coffee.png", "astronaut": "portrait.jpg"}.items():
        Image.fromarray(getattr(skimage_data, name)()).convert("RGB").save(media / file)
    (media / "面包.txt").write_text(BREAD_NOTE, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMSEARCH_CACHE_DIR", str(cache))
        with Library.open(root / "index", model=model_name) as lib:
            lib.index([media])
    return root / "index"


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def _env(cache: Path, hub: Path | None, tmp_path: Path) -> dict[str, str]:
    """A user's environment with no network: offline mode, the given (or an empty) HF cache."""
    empty = tmp_path / "empty-hf-cache"
    empty.mkdir(exist_ok=True)
    return {**os.environ, "MMSEARCH_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1",
            "HF_HUB_CACHE": str(hub or empty)}


def _mmsearch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mmsearch", *args], capture_output=True,
                          text=True, check=False, timeout=600, env=env)


# -- the ONNX path ------------------------------------------------------------------------------


def test_the_onnx_text_tower_gives_the_torch_models_vectors_in_chinese_and_english(encoder, torch_model):
    import torch

    model, _, tokenizer = torch_model
    with torch.inference_mode():
        want = model.encode_text(tokenizer(TEXTS)).numpy()
    assert (encoder.export_dir / "text.onnx").is_file()
    alone = np.concatenate([encoder.embed_texts([t]) for t in TEXTS])  # each at its own length
    batch = encoder.embed_texts(TEXTS)
    assert _cosines(alone, want).min() >= FIDELITY
    assert _cosines(batch, want).min() >= FIDELITY
    # Different texts really get different vectors (not one constant the check would pass).
    assert _cosines(batch[:1], batch[1:2])[0] < 0.999


def test_the_tokenizer_gives_open_clips_ids(encoder, torch_model):
    from mmsearch.encoders.hf_tokenizer import HfTokenizer

    _, _, tokenizer = torch_model
    meta = encoder._meta["tokenizer"]
    assert meta["kind"] == "hf" and meta["name"] == XLMR_HF_NAME
    ours = HfTokenizer(encoder.export_dir / meta["file"], 77, meta["pad_id"])
    texts = [*TEXTS, "Ünïcödé café — naïve façade", "a\x07bell", "x&amp;y", "猫"]
    np.testing.assert_array_equal(ours(texts), tokenizer(texts).numpy())
    # The tokenizer reads Chinese as pieces of its vocabulary, not as unknown tokens.
    assert 3 not in ours(["一只猫在沙发上睡觉"])[0]


def test_the_tokenizer_and_text_tower_load_with_no_network(encoder, model_name: str, cache: Path,
                                                            hub: Path, tmp_path: Path):
    """With HF_HUB_OFFLINE=1 and every socket refused, the XLM-R tokenizer is found in the cache,
    and a Chinese query is embedded without torch or transformers."""
    script = textwrap.dedent(
        f"""
        import socket, sys

        def refuse(*args, **kwargs):
            raise OSError("no network in this test")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        from mmsearch.encoders import load_encoder, resolve_model
        from mmsearch.encoders.hf_tokenizer import cached_folder

        print("cached:", cached_folder({XLMR_HF_NAME!r}, "test"))
        encoder = load_encoder(resolve_model({model_name!r}), cache_dir={str(cache)!r})
        print("shape:", encoder.embed_texts(["一只猫"]).shape)
        heavy = sorted(m for m in ("torch", "open_clip", "transformers") if m in sys.modules)
        print("heavy:", heavy)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=300, env=_env(cache, hub, tmp_path))
    assert done.returncode == 0, done.stderr
    assert f"cached: {hub}/models--{XLMR_HF_NAME}/snapshots/" in done.stdout
    assert "shape: (1, 512)" in done.stdout and "heavy: []" in done.stdout, done.stdout


# -- what a user sees -------------------------------------------------------------------------


def test_a_chinese_query_on_the_multilingual_index_gets_hits_without_torch(index: Path, cache: Path,
                                                                           tmp_path: Path):
    # The query needs no Hugging Face cache at all: the export keeps its own tokenizer.
    env = _env(cache, None, tmp_path)
    done = _mmsearch(env, "search", "--index", str(index), "--plain", "--min-score", "-1", "--", "一只猫")
    assert done.returncode == 0, done.stderr
    assert "does not understand" not in done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4  # three photos and the note, scored
    first = _mmsearch(env, "search", "--index", str(index), "--plain", "--", "面包")
    assert first.returncode == 0, first.stderr
    assert Path(first.stdout.splitlines()[0].split("\t")[2]).name == "面包.txt"
    script = textwrap.dedent(
        f"""
        import sys
        from mmsearch import Library
        with Library.open({str(index)!r}, readonly=True) as lib:
            hits = lib.search("海滩上的狗", k=3, min_score=-1)
        assert len(hits) == 3, hits
        print("heavy:", sorted(m for m in ("torch", "open_clip", "transformers") if m in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stdout, done.stdout


def test_a_missing_tokenizer_says_which_and_what_to_do(checkpoint: str, tmp_path: Path):
    media = tmp_path / "media"
    media.mkdir()
    Image.fromarray(skimage_data.chelsea()).save(media / "cat.png")
    fresh = tmp_path / "models"  # no export yet: the model must be built, tokenizer first
    model = f"open_clip:{XLMR_ARCH}@{checkpoint}"
    done = _mmsearch(_env(fresh, None, tmp_path), "index", str(media), "--model", model,
                     "--index", str(tmp_path / "index"))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert model in line and f"tokenizer '{XLMR_HF_NAME}'" in line
    assert f"hf download {XLMR_HF_NAME}" in line and "--model offline-multilingual" in line


def test_an_english_openclip_index_refuses_a_chinese_query_in_one_line(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
):
    from mmsearch import Library, QueryError

    checkpoint = shared_checkpoint(tmp_path_factory)
    cache = Path(shared_model_cache(tmp_path_factory))
    media = tmp_path / "media"
    media.mkdir()
    for name in ("chelsea", "coffee"):
        Image.fromarray(getattr(skimage_data, name)()).convert("RGB").save(media / f"{name}.jpg")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMSEARCH_CACHE_DIR", str(cache))
        with Library.open(tmp_path / "index", model=f"open_clip:{SMALL_ARCH}@{checkpoint}") as lib:
            lib.index([media])
            assert lib.encoder().languages == ("en",)
            with pytest.raises(QueryError, match="offline-multilingual"):
                lib.search("一只猫")
            assert len(lib.search("a cat", k=2, min_score=-1)) == 2
    done = _mmsearch(_env(cache, None, tmp_path), "search", "--index", str(tmp_path / "index"),
                     "--plain", "--", "一只猫")
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "CJK" in lines[0] and "English" in lines[0]
    assert "--model offline-multilingual" in lines[0] and f"--model {OPENCLIP_SUGGESTION}" in lines[0]


def test_each_openclip_model_says_which_languages_its_text_side_reads():
    import open_clip

    from mmsearch.encoders.openclip_spec import text_languages
    from mmsearch.query.language import MULTILINGUAL_OPENCLIP

    def languages(arch: str):
        return text_languages(arch, open_clip.get_model_config(arch)["text_cfg"])

    assert {"zh", "en", "fr", "ja", "ru", "ar"} <= set(languages(XLMR_ARCH))
    assert {"zh", "en"} <= set(languages("xlm-roberta-large-ViT-H-14"))
    assert languages("ViT-B-32") == languages(SMALL_ARCH) == languages("roberta-ViT-B-32") == ("en",)
    assert languages("ViT-B-16-SigLIP-i18n-256") is None  # multilingual, not listed: never refused
    # The suggested checkpoint is a real open_clip tag, spelled as mmsearch's model names are.
    assert MULTILINGUAL_OPENCLIP == OPENCLIP_SUGGESTION
    spec = resolve_model(MULTILINGUAL_OPENCLIP)
    assert open_clip.get_pretrained_cfg(spec.options["architecture"], spec.options["pretrained"])
