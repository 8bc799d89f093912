"""Indexing on a Ray cluster (a loopback one started here): the same index as a local run, a
worker killed half-way loses and duplicates nothing, and what workers lack is said plainly.

Real offline models (MiniLM, EfficientNet-Lite2); photos are scikit-image's bundled samples
and generated pictures, one short generated video, two notes and a corrupt JPEG.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_image
from PIL import Image
from ray_helpers import local_cluster, loopback_env

from mmsearch import ClusterError, Library, Progress
from mmsearch.cli import app
from mmsearch.config import load_settings

loopback_env()  # before Ray is imported
pytest.importorskip("ray")
skimage_data = pytest.importorskip("skimage.data")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from videokit import write_video

pytestmark = pytest.mark.models

SAMPLES = [
    "astronaut", "brick", "camera", "chelsea", "coffee", "coins", "colorwheel", "grass",
    "gravel", "hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "page",
    "rocket", "text", "clock", "checkerboard", "cell",
]
WORDS = [
    "cat", "coffee", "rocket", "astronaut", "coins", "moon", "galaxy", "bricks", "grass",
    "stones", "text", "a page of a book", "clock", "camera", "red", "blue", "green", "yellow",
    "stripes", "bread", "garden", "a colour wheel", "cells under a microscope", "an eye",
    "a chessboard",
]
TEMPLATES = ["{}", "a photo of {}", "a picture showing {}", "something like {}"]
QUERIES = [t.format(w) for w in WORDS for t in TEMPLATES]  # 100


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(cpus=2) as running:
        yield running


def settings(**changes: object):
    # Small batches: the files split into many blocks, so both workers get some.
    return load_settings(ray_batch_size=4, **changes)


def make_folder(root: Path) -> Path:
    media = root / "media"
    (media / "samples").mkdir(parents=True)
    for name in SAMPLES:
        Image.fromarray(getattr(skimage_data, name)()).convert("RGB").save(media / "samples" / f"{name}.jpg")
    colours = {"red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220), "yellow": (240, 220, 40)}
    for name, colour in colours.items():
        for stripe in (0, 12, 30):
            make_image(media / "made" / f"{name}-{stripe}.png", colour, size=(96, 64), stripe=stripe)
    (media / "bread.md").write_text("Sourdough: mix flour, water and salt, let it rise, bake the loaf.")
    (media / "garden.txt").write_text("Plant tomatoes and basil in the garden in spring.")
    (media / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    frames = [(Image.new("RGB", (160, 90), c), 2.0) for c in [(220, 30, 30), (30, 60, 220)]]
    for image, _ in frames:  # texture: a flat frame is skipped as blank
        for x in range(0, 160, 16):
            image.paste((20, 20, 20), (x, 0, x + 4, 90))
    write_video(media / "trip.mp4", frames, size=(160, 90), preset="ultrafast")
    return media


def catalog_vectors(index: Path) -> dict[tuple[str, str], np.ndarray]:
    """(path, space) -> the item's vectors in chunk order, read from the catalog itself."""
    with sqlite3.connect(index / "catalog.db") as db:
        rows = db.execute(
            "SELECT i.path, v.space, v.vector FROM vectors v JOIN items i ON i.id = v.item_id "
            "ORDER BY i.path, v.space, v.chunk"
        ).fetchall()
    out: dict[tuple[str, str], list[np.ndarray]] = {}
    for path, space, blob in rows:
        out.setdefault((path, space), []).append(np.frombuffer(blob, dtype=np.float32))
    return {key: np.stack(vs) for key, vs in out.items()}


def catalog_items(index: Path) -> dict[str, str]:
    with sqlite3.connect(index / "catalog.db") as db:
        return dict(db.execute("SELECT path, status FROM items").fetchall())


def duplicated_vectors(index: Path) -> int:
    with sqlite3.connect(index / "catalog.db") as db:
        return db.execute(
            "SELECT COUNT(*) FROM (SELECT item_id, space, chunk FROM vectors "
            "GROUP BY item_id, space, chunk HAVING COUNT(*) > 1)"
        ).fetchone()[0]


def test_ray_gives_the_same_index_as_a_local_run(tmp_path: Path, cluster) -> None:
    media = make_folder(tmp_path)
    with Library.open(tmp_path / "local", model="offline-default", settings=settings()) as lib:
        local = lib.index([media])
        local_top = [[h.path for h in lib.search(q, k=10)] for q in QUERIES]
    with Library.open(tmp_path / "ray", model="offline-default", settings=settings()) as lib:
        seen: list[Progress] = []
        remote = lib.index([media], ray=cluster.address, progress=seen.append)
        ray_top = [[h.path for h in lib.search(q, k=10)] for q in QUERIES]
        video = lib.item(media / "trip.mp4")
    assert (remote.added, remote.failed) == (local.added, local.failed) == (len(SAMPLES) + 12 + 3, 1)
    assert "ray" in remote.stage_seconds  # it did go through the cluster
    assert [p.done for p in seen if p.phase == "encode"][-1] == local.added + local.failed
    assert video.kind == "video" and video.moments  # the video's keyframes came back too
    assert catalog_items(tmp_path / "ray") == catalog_items(tmp_path / "local")
    mine, theirs = catalog_vectors(tmp_path / "local"), catalog_vectors(tmp_path / "ray")
    assert mine.keys() == theirs.keys()
    for key, vectors in mine.items():
        assert vectors.shape == theirs[key].shape, key
        cosine = np.sum(vectors * theirs[key], axis=1) / (
            np.linalg.norm(vectors, axis=1) * np.linalg.norm(theirs[key], axis=1)
        )
        assert cosine.min() >= 0.9999, key
    assert len(QUERIES) == 100
    assert ray_top == local_top

    # The Ray run is incremental like a local one: nothing changed, nothing is encoded.
    with Library.open(tmp_path / "ray", settings=settings()) as lib:
        again = lib.index([media], ray=cluster.address)
    assert (again.added, again.updated, again.encoded) == (0, 0, 0)


def test_a_worker_killed_half_way_loses_and_duplicates_nothing(tmp_path: Path, cluster) -> None:
    media = tmp_path / "many"
    for n in range(160):
        colour = ((n * 37) % 256, (n * 91) % 256, (n * 53) % 256)
        make_image(media / f"{n:03d}.png", colour, size=(80, 60), stripe=n % 70)
    index = tmp_path / "index"
    done = [0]

    def on_progress(p: Progress) -> None:
        if p.phase == "encode":
            done[0] = p.done

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            with Library.open(index, model="offline-default", settings=settings()) as lib:
                lib.index([media], ray=cluster.address, progress=on_progress)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 300
    while done[0] < 32 and runner.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    pids, at_kill = cluster.worker_pids(), done[0]
    assert pids and 32 <= at_kill < 160, (pids, at_kill)  # half-way: encoding has begun, not ended
    os.kill(pids[0], signal.SIGKILL)
    runner.join(timeout=600)
    assert not runner.is_alive()
    print(f"killed worker {pids[0]} at {at_kill}/160 files; the run: {outcome[0] or 'finished'}")
    if outcome[0] is not None:  # the run may give up: then a re-run finishes the job
        assert isinstance(outcome[0], ClusterError), outcome[0]
        with Library.open(index, settings=settings()) as lib:
            lib.index([media], ray=cluster.address)
    items = catalog_items(index)
    assert len(items) == 160 and set(items.values()) == {"ok"}
    assert duplicated_vectors(index) == 0
    vectors = catalog_vectors(index)
    assert {path for path, _ in vectors} == set(items)
    with Library.open(index, settings=settings()) as lib:
        held = {name: space["count"] for name, space in lib.stats().spaces.items()}
        assert held == {s: sum(len(v) for (_, sp), v in vectors.items() if sp == s) for s in held}
        assert Path(lib.search(image=media / "007.png", k=1)[0].path).name == "007.png"


def test_files_the_workers_cannot_read_are_named(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or os.geteuid() != 0 or subprocess.run(
        ["unshare", "--mount", "true"], check=False, capture_output=True
    ).returncode != 0:
        pytest.skip("needs root and unshare to give the cluster a file system without the files")
    media = tmp_path / "media"
    make_image(media / "red.png", (220, 30, 30))
    with (
        local_cluster(cpus=1, hide=[media]) as other,
        Library.open(tmp_path / "index", model="offline-default", settings=settings()) as lib,
    ):
        with pytest.raises(ClusterError, match=r"cannot read .*red\.png.*same paths on every node"):
            lib.index([media], ray=other.address)
        assert lib.stats().items == {}  # nothing half-done was written


def test_a_worker_without_the_model_says_so(tmp_path: Path, cluster) -> None:
    media = tmp_path / "media"
    make_image(media / "red.png", (220, 30, 30))
    missing = tmp_path / "not-here" / "weights.pt"
    model = f"open_clip:ViT-B-32@{missing}"
    with (
        Library.open(tmp_path / "index", model=model, settings=settings()) as lib,
        pytest.raises(ClusterError, match=r"Ray worker.*weights\.pt") as caught,
    ):
        lib.index([media], ray=cluster.address)
    assert "\n" not in str(caught.value)


def test_the_command_line_indexes_on_ray(tmp_path: Path, cluster) -> None:
    media = tmp_path / "media"
    for n, colour in enumerate([(220, 30, 30), (30, 60, 220), (30, 170, 50)]):
        make_image(media / f"{n}.png", colour)
    index = ["--index", str(tmp_path / "index"), "--model", "hash-test"]
    result = CliRunner().invoke(app, ["index", str(media), "--ray", cluster.address, "--json", *index])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["added"] == 3
    assert "ray" in json.loads(result.output)["stage_seconds"]


def test_an_unreachable_cluster_is_a_clear_error(tmp_path: Path) -> None:
    media = tmp_path / "media"
    make_image(media / "red.png", (220, 30, 30))
    index = ["--index", str(tmp_path / "index"), "--model", "hash-test"]
    result = CliRunner().invoke(app, ["index", str(media), "--ray", "127.0.0.1:9", *index])
    assert result.exit_code != 0
    assert "Cannot reach the Ray cluster at 127.0.0.1:9" in result.output
    assert "ray start --head" in result.output


def test_ray_with_vectors_in_milvus_holds_what_the_catalog_holds(tmp_path: Path, cluster) -> None:
    pytest.importorskip("pymilvus")
    media = tmp_path / "media"
    colours = [(220, 30, 30), (30, 60, 220), (30, 170, 50), (240, 220, 40), (120, 40, 160)]
    for n, colour in enumerate(colours):
        make_image(media / f"{n}.png", colour, stripe=10 * n)
    milvus = settings(vector_store="milvus")
    with Library.open(tmp_path / "index", model="hash-test", settings=milvus) as lib:
        report = lib.index([media], ray=cluster.address)
        assert report.added == len(colours) and "ray" in report.stage_seconds
        held = {name: space["count"] for name, space in lib.stats().spaces.items()}
        top = lib.search(image=media / "3.png", k=1)[0]
    vectors = catalog_vectors(tmp_path / "index")
    assert held and held == {s: sum(len(v) for (_, sp), v in vectors.items() if sp == s) for s in held}
    assert (tmp_path / "index" / "milvus.db").exists()  # the vectors went to Milvus, not FAISS
    assert Path(top.path).name == "3.png"
