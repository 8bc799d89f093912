"""The ONNX path of OpenCLIP: fidelity to open_clip, torch-free queries, the export cache.

Users rely on an exported model giving the vectors open_clip gives: these tests compare the
two on real photos (scikit-image's) and real captions (COCO's, when the shared evaluation data
is present, else a fixed list).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("open_clip")
pytest.importorskip("onnxscript")
skimage_data = pytest.importorskip("skimage.data")

from openclip_helpers import SMALL_ARCH, shared_checkpoint, shared_model_cache

from mmsearch.encoders import load_encoder, resolve_model
from mmsearch.encoders.openclip_export import FIDELITY

_COCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_mini" / "manifest.csv"
_CAPTIONS = [
    "A man riding a wave on top of a surfboard.",
    "two cats asleep on a red sofa",
    "Ünïcödé café — naïve façade &amp; 東京",
    "I'm sure it's 12,345.67 km!!",
    "word " * 120,  # longer than the 77-token context
]


def _captions() -> list[str]:
    if not _COCO.is_file():
        return _CAPTIONS
    with open(_COCO, newline="") as handle:
        coco = [row["caption"] for row in csv.DictReader(handle)]
    return coco[::5][:60] + _CAPTIONS


def _photos() -> list[Image.Image]:
    names = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "camera")
    return [Image.fromarray(getattr(skimage_data, name)()) for name in names]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    return shared_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shared_model_cache(tmp_path_factory))


@pytest.fixture(scope="module")
def onnx_encoder(checkpoint: str, cache: Path):
    encoder = load_encoder(resolve_model(f"open_clip:{SMALL_ARCH}@{checkpoint}"), cache_dir=cache)
    assert encoder.export_dir is not None
    return encoder


@pytest.fixture(scope="module")
def torch_model(checkpoint: str):
    import open_clip

    model, _, transform = open_clip.create_model_and_transforms(SMALL_ARCH, pretrained=checkpoint)
    return model.eval(), transform, open_clip.get_tokenizer(SMALL_ARCH)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def test_exported_towers_match_open_clip_on_real_photos_and_captions(onnx_encoder, torch_model):
    import torch

    model, transform, tokenizer = torch_model
    captions, photos = _captions(), _photos()
    with torch.inference_mode():
        want_text = model.encode_text(tokenizer(captions)).numpy()
        want_image = model.encode_image(torch.stack([transform(p) for p in photos])).numpy()
    # One at a time (each text at its own length) and in batches, as queries and ingest do.
    text_alone = np.concatenate([onnx_encoder.embed_texts([c]) for c in captions])
    text_batch = onnx_encoder.embed_texts(captions)
    prepared = [onnx_encoder.prepare_image(p) for p in photos]
    image_alone = np.concatenate([onnx_encoder.embed_images([p])["semantic"] for p in prepared])
    # Twice the photos: ingest's batches are longer than one run of the image tower (8).
    image_batch = onnx_encoder.embed_images(prepared + prepared)["visual"][len(prepared) :]
    for got, want in (
        (text_alone, want_text),
        (text_batch, want_text),
        (image_alone, want_image),
        (image_batch, want_image),
    ):
        assert _cosines(got, want).min() >= FIDELITY


def _pooled_4x4(tokens: np.ndarray) -> np.ndarray:
    """open_clip's projected patch tokens `(n, 49, d)` averaged over the 4 x 4 cells of a 7 x 7
    grid (rows and columns 0-1, 1-3, 3-5, 5-6), unit rows: what the reranker should store."""
    grid = tokens.reshape(len(tokens), 7, 7, -1)
    spans = ((0, 2), (1, 4), (3, 6), (5, 7))
    cells = np.stack([grid[:, a:b, c:d].mean(axis=(1, 2)) for a, b in spans for c, d in spans], 1)
    return cells / np.linalg.norm(cells, axis=2, keepdims=True)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_image_regions_are_open_clips_patch_tokens_through_its_projection(
    backend: str, onnx_encoder, torch_model, checkpoint: str, cache: Path, monkeypatch: pytest.MonkeyPatch
):
    """The reranker's regions for an OpenCLIP model: each photo's patch tokens (after the
    tower's final norm) through the model's projection, pooled 7 x 7 -> 4 x 4 and kept in
    8 bits; the same from the ONNX export and from torch, next to unchanged image vectors."""
    import torch

    from mmsearch.encoders.regions import PATCH_INT8

    model, transform, _ = torch_model
    photos = _photos()
    pixels = torch.stack([transform(p) for p in photos])
    with torch.inference_mode():
        model.visual.output_tokens = True
        try:
            pooled, tokens = model.visual(pixels)
        finally:
            model.visual.output_tokens = False
        want = _pooled_4x4((tokens @ model.visual.proj).numpy())
    if backend == "torch":
        monkeypatch.setenv("MMSEARCH_OPENCLIP_BACKEND", "torch")
        encoder = load_encoder(resolve_model(f"open_clip:{SMALL_ARCH}@{checkpoint}"), cache_dir=cache)
        assert encoder.export_dir is None
    else:
        encoder = onnx_encoder
    vectors, regions = encoder.embed_images_with_regions([encoder.prepare_image(p) for p in photos])
    assert _cosines(vectors["semantic"], pooled.numpy()).min() >= FIDELITY
    for codes, cells in zip(regions, want):
        assert codes.format == PATCH_INT8 and (codes.count, codes.width) == (16, cells.shape[1])
        got = encoder.region_vectors(codes)
        assert _cosines(got, cells).min() > 0.999  # 8-bit rounding only
    # A photo's regions differ from one another (a constant grid would make the rerank moot).
    cross = got @ got.T
    assert cross[~np.eye(16, dtype=bool)].min() < 0.999


def test_tokenizer_gives_open_clip_ids(onnx_encoder, torch_model):
    from mmsearch.encoders.clip_tokenizer import ClipTokenizer

    _, _, tokenizer = torch_model
    ours = ClipTokenizer(onnx_encoder.export_dir / "bpe_merges.txt")
    texts = _captions() + ["", "  spaced\tout\n", "<start_of_text> hi", "a\x07bell", "x&amp;y"]
    np.testing.assert_array_equal(ours(texts), tokenizer(texts).numpy())


def test_export_is_made_once_and_reused(onnx_encoder, checkpoint: str, cache: Path):
    meta = onnx_encoder.export_dir / "meta.json"
    stamp = meta.stat().st_mtime_ns
    again = load_encoder(resolve_model(f"open_clip:{SMALL_ARCH}@{checkpoint}"), cache_dir=cache)
    assert again.export_dir == onnx_encoder.export_dir
    assert meta.stat().st_mtime_ns == stamp
    recorded = json.loads(meta.read_text())
    assert recorded["fidelity"]["text"] >= FIDELITY and recorded["fidelity"]["image"] >= FIDELITY


def test_touched_checkpoint_with_same_content_is_not_exported_again(
    tmp_path: Path, checkpoint: str, cache: Path
):
    # A copy of the checkpoint (new path) gets its own export folder; touching it afterwards
    # (same bytes, new time) only re-stamps that folder after hashing, keeping the towers.
    copy = tmp_path / "copy.pt"
    copy.write_bytes(Path(checkpoint).read_bytes())
    spec = resolve_model(f"open_clip:{SMALL_ARCH}@{copy}")
    first = load_encoder(spec, cache_dir=cache)
    towers = (first.export_dir / "image.onnx").stat().st_mtime_ns
    os.utime(copy, ns=(1_000_000_000, 1_000_000_000))
    second = load_encoder(spec, cache_dir=cache)
    assert (second.export_dir / "image.onnx").stat().st_mtime_ns == towers
    assert json.loads((second.export_dir / "meta.json").read_text())["checkpoint"]["mtime_ns"] == (
        1_000_000_000
    )
    np.testing.assert_allclose(second.embed_texts(["a cat"]), first.embed_texts(["a cat"]), atol=1e-6)


def test_queries_do_not_import_torch(
    tmp_path: Path, checkpoint: str, cache: Path, monkeypatch: pytest.MonkeyPatch
):
    # Index with this process (the export exists), then search by text and by an image that is
    # not in the index from a fresh process: neither loads torch or open_clip.
    from mmsearch import Library

    media = tmp_path / "media"
    media.mkdir()
    for i, photo in enumerate(_photos()[:3]):
        photo.convert("RGB").save(media / f"p{i}.jpg")
    probe = tmp_path / "probe.png"
    _photos()[3].save(probe)
    model = f"open_clip:{SMALL_ARCH}@{checkpoint}"
    env = {**os.environ, "MMSEARCH_CACHE_DIR": str(cache)}
    # monkeypatch restores the caller's value: deleting it leaked into every later test.
    monkeypatch.setenv("MMSEARCH_CACHE_DIR", str(cache))
    with Library.open(tmp_path / "index", model=model) as lib:
        lib.index([media])
    script = textwrap.dedent(
        f"""
        import sys
        from mmsearch import Library
        with Library.open({str(tmp_path / "index")!r}, readonly=True) as lib:
            text = lib.search("a cat on a sofa", k=2, min_score=-1)
            image = lib.search(image={str(probe)!r}, k=1, min_score=-1)
        assert len(text) == 2 and len(image) == 1, (text, image)
        heavy = sorted(m for m in ("torch", "open_clip", "torchvision") if m in sys.modules)
        print("heavy:", heavy)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stdout, done.stdout


def test_int8_mode_is_its_own_model_sharing_the_export(tmp_path: Path) -> None:
    from mmsearch.encoders.openclip import export_folder

    full = resolve_model(f"open_clip:{SMALL_ARCH}@/models/ckpt.pt")
    fast = resolve_model(f"open_clip:{SMALL_ARCH}@/models/ckpt.pt#int8")
    assert fast.options == {**full.options, "precision": "int8"}
    assert fast.identity() != full.identity()  # an index records which one made its vectors
    assert export_folder(tmp_path, fast) == export_folder(tmp_path, full)
    assert resolve_model(f"open_clip:{SMALL_ARCH}/some_tag#int8").options["pretrained"] == "some_tag"


def test_int8_image_tower_stays_close_to_full_precision(onnx_encoder, checkpoint: str, cache: Path):
    fast = load_encoder(resolve_model(f"open_clip:{SMALL_ARCH}@{checkpoint}#int8"), cache_dir=cache)
    assert fast.export_dir == onnx_encoder.export_dir
    prepared = [onnx_encoder.prepare_image(p) for p in _photos()]
    a = onnx_encoder.embed_images(prepared)["visual"]
    b = fast.embed_images(prepared)["visual"]
    assert (fast.export_dir / "image-int8.onnx").is_file()
    cos = _cosines(a, b)
    # Close but not equal: 8-bit weights move each vector a little.
    assert cos.min() > 0.95 and cos.max() < 1.0 - 1e-6
    np.testing.assert_allclose(fast.embed_texts(["a cat"]), onnx_encoder.embed_texts(["a cat"]), atol=1e-6)


def test_a_new_export_deletes_older_exports_of_the_same_weights(tmp_path: Path) -> None:
    """After an upgrade (a new export version or open_clip), the old export of the same
    checkpoint is deleted, not left beside the new one; other weights' exports stay."""
    from mmsearch.encoders.openclip import prune_superseded

    def export(name: str, sha: str, version: int, open_clip: str = "3.3.0") -> Path:
        folder = tmp_path / "open_clip" / name
        folder.mkdir(parents=True)
        meta = {"checkpoint_sha256": sha, "export_version": version, "open_clip": open_clip}
        (folder / "meta.json").write_text(json.dumps(meta))
        (folder / "image.onnx.data").write_bytes(b"weights")
        return folder

    new = export("ViT-B-32-aaaa", "s1", 2)
    old_version = export("ViT-B-32-bbbb", "s1", 1)
    old_open_clip = export("ViT-B-32-cccc", "s1", 2, open_clip="3.2.0")
    other_weights = export("ViT-B-32-dddd", "s2", 1)
    half_written = tmp_path / "open_clip" / "ViT-B-32-eeee"  # no meta.json: not ours to judge
    half_written.mkdir()
    gone = prune_superseded(new, json.loads((new / "meta.json").read_text()))
    assert sorted(gone) == sorted([old_version, old_open_clip])
    assert not old_version.exists() and not old_open_clip.exists()
    assert new.exists() and other_weights.exists() and half_written.exists()
