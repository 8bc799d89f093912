"""The OpenCLIP path through the public API: index and search with `open_clip:ARCH@checkpoint`,
exactly as a user with downloaded weights would (here an architecture-true model with random
weights, since no pretrained CLIP can be fetched on these machines)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from openclip_helpers import SMALL_ARCH, SMALL_ARCH_DIM, shared_checkpoint, shared_model_cache
from PIL import Image

from mmsearch import Library, ModelMismatchError

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    return shared_checkpoint(tmp_path_factory)


@pytest.fixture(autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # The ONNX export goes to a per-session cache shared with test_openclip*, not the user's.
    monkeypatch.setenv("MMSEARCH_CACHE_DIR", shared_model_cache(tmp_path_factory))


def test_index_and_search_with_a_local_openclip_checkpoint(tmp_path: Path, checkpoint: str) -> None:
    media = tmp_path / "media"
    media.mkdir()
    for name in ("chelsea", "coffee", "rocket", "astronaut"):
        Image.fromarray(getattr(skimage_data, name)()).save(media / f"{name}.jpg")
    (media / "note.md").write_text("A short note about rockets and space travel.")
    model = f"open_clip:{SMALL_ARCH}@{checkpoint}"
    with Library.open(tmp_path / "index", model=model) as lib:
        report = lib.index([media])
        assert (report.added, report.failed) == (5, 0)
        stats = lib.stats()
        assert stats.spaces["visual"] == {"dim": SMALL_ARCH_DIM, "count": 4, "factory": "IDMap2,Flat"}
        # A copy outside the index goes through the model itself, and finds its original.
        probe = tmp_path / "probe.png"
        shutil.copy(media / "rocket.jpg", probe)
        hits = lib.search(image=probe, k=2)
        assert Path(hits[0].path).name == "rocket.jpg" and hits[0].score > 0.99
        # Random weights mean nothing semantically, but text search runs end to end.
        hits = lib.search("a rocket launch", k=3, min_score=-1)
        assert len(hits) == 3 and all(-1 <= h.score <= 1 for h in hits)
        # The reranker matched the query's words with each photo's patch regions.
        images = [h for h in hits if h.kind == "image"]
        assert len(images) >= 2 and all("rerank" in h.scores for h in images)
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["spaces"]["semantic"]["dim"] == SMALL_ARCH_DIM
    assert manifest["model"]["options"] == {"architecture": SMALL_ARCH, "pretrained": checkpoint}
    with pytest.raises(ModelMismatchError):
        Library.open(tmp_path / "index", model="offline-default")


def test_tune_trains_the_patch_head_of_an_openclip_index(tmp_path: Path, checkpoint: str) -> None:
    """`mmsearch tune` on an OpenCLIP index trains the cross-attention head over the photos'
    patch regions and judges it on held-out captions. Random weights mean the gate may refuse
    it; what must hold is that it was trained and judged, and search still runs whatever the
    gate said."""
    media = tmp_path / "media"
    media.mkdir()
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}
    shapes = {"square": (8, 8, 56, 56), "stripe": (0, 24, 64, 40), "corner": (0, 0, 24, 24)}
    pairs = []
    for n, ((colour, rgb), (shape, box)) in enumerate(
        (c, s) for _ in range(4) for c in colours.items() for s in shapes.items()
    ):
        image = Image.new("RGB", (64, 64), (128 + 10 * (n % 5), 128, 128))
        image.paste(rgb, box)
        path = media / f"{colour}-{shape}-{n}.png"
        image.save(path)
        pairs.append((path, f"a {colour} {shape} on grey"))
    with Library.open(tmp_path / "index", model=f"open_clip:{SMALL_ARCH}@{checkpoint}") as lib:
        assert lib.index([media]).added == len(pairs)
        report = lib.tune(pairs)
        assert report.captions == len(pairs)
        assert any(setting.startswith("head") for setting in report.tried), report.tried
        hits = lib.search("a red square", k=5, min_score=-1)
        assert len(hits) == 5


def test_a_text_search_runs_the_text_tower_once(tmp_path: Path, checkpoint: str, monkeypatch) -> None:
    """The query and the reranker's words go through the text tower in one run (each run reads
    all its weights: ~20 ms of a cold search), and find what a run each finds, scored alike."""
    from mmsearch.encoders import openclip

    media = tmp_path / "media"
    media.mkdir()
    for name in ("chelsea", "coffee", "rocket", "astronaut"):
        Image.fromarray(getattr(skimage_data, name)()).save(media / f"{name}.jpg")
    model = f"open_clip:{SMALL_ARCH}@{checkpoint}"
    with Library.open(tmp_path / "index", model=model) as lib:
        lib.index([media])
    runs: list[list[str]] = []
    texts = openclip._Towers.texts
    monkeypatch.setattr(openclip._Towers, "texts", lambda self, t, *a: runs.append(list(t)) or texts(self, t, *a))

    def search(joint: bool) -> list[tuple[str, float, float]]:
        runs.clear()
        with Library.open(tmp_path / "index", readonly=True) as lib:  # a fresh word cache
            monkeypatch.setattr(lib.encoder(), "joint_text_batches", joint)
            hits = lib.search("a rocket on the launch pad", k=4, min_score=-1)
        return [(Path(h.path).name, h.score, h.scores.get("rerank", 0.0)) for h in hits]

    separate = search(joint=False)
    assert runs == [["a rocket on the launch pad"], ["a photo of a rocket.", "a photo of a launch.",
                                                      "a photo of a pad."]]
    joint = search(joint=True)
    assert runs == [["a rocket on the launch pad", "a photo of a rocket.", "a photo of a launch.",
                     "a photo of a pad."]]
    assert [h[0] for h in joint] == [h[0] for h in separate]
    assert all(abs(a[1] - b[1]) < 1e-5 and abs(a[2] - b[2]) < 1e-5 for a, b in zip(joint, separate))
