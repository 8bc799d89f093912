"""clip-retrieval's own `ClipClient` (the package's code, unchanged) queries a running
`mmsearch serve`: text, image and embedding queries, num_images, deduplicate, result fields."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import httpx
import pytest
from conftest import COLOURS, make_image
from server_helpers import indexed_folder
from server_process import running_server

from mmsearch import Library


def clip_client_module():
    """`clip_retrieval.clip_client`, loaded from the installed package's file. The package's
    `__init__` imports its whole back end (torch, flask, ...), which the client does not need."""
    spec = importlib.util.find_spec("clip_retrieval")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("clip-retrieval is not installed (scripts/setup.sh installs it with --no-deps)")
    path = Path(spec.submodule_search_locations[0]) / "clip_client.py"
    module_spec = importlib.util.spec_from_file_location("clip_retrieval_client", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("clip")
    index, media = indexed_folder(tmp)
    shutil.copy(media / "blue.png", media / "blue-copy.png")  # an exact copy, for deduplicate
    with Library.open(index) as lib:
        lib.index([media])
        red_vector = lib.encoder().text_spaces()["semantic"](["red"])[0].tolist()
    with running_server(index) as base:
        yield base, index, media, red_vector


def captions(results: list[dict]) -> list[str]:
    return [r["caption"] for r in results]


def test_text_query_through_clip_client(served) -> None:
    base, index, media, _ = served
    clip = clip_client_module()
    client = clip.ClipClient(url=f"{base}/knn-service", indice_name=index.name, num_images=3,
                             deduplicate=False)
    results = client.query(text="red")
    assert captions(results)[0] == "red.png" and len(results) == 3
    for r in results:
        assert set(r) >= {"url", "id", "similarity", "caption"}
        assert isinstance(r["id"], int) and -1 <= r["similarity"] <= 1
    # the url serves the file itself
    assert httpx.get(results[0]["url"]).content == (media / "red.png").read_bytes()
    docs = clip.ClipClient(url=f"{base}/knn-service", indice_name=index.name,
                           modality=clip.Modality.TEXT, num_images=2)
    assert captions(docs.query(text="bake bread")) == ["bread.md"]


def test_image_query_through_clip_client(served, tmp_path: Path) -> None:
    base, index, _, _ = served
    clip = clip_client_module()
    probe = make_image(tmp_path / "probe.png", COLOURS["green"], size=(90, 70))
    client = clip.ClipClient(url=f"{base}/knn-service", indice_name=index.name, num_images=1)
    assert captions(client.query(image=str(probe))) == ["green.png"]


def test_embedding_query_matches_the_text_query(served) -> None:
    base, index, _, red_vector = served
    clip = clip_client_module()
    client = clip.ClipClient(url=f"{base}/knn-service", indice_name=index.name, num_images=4,
                             deduplicate=False)
    by_vector = client.query(embedding_input=red_vector)
    assert captions(by_vector)[0] == "red.png"
    assert [r["id"] for r in by_vector] == [r["id"] for r in client.query(text="red")][: len(by_vector)]


def test_num_images_and_deduplicate(served) -> None:
    base, index, _, _ = served
    clip = clip_client_module()
    with_copies = clip.ClipClient(url=f"{base}/knn-service", indice_name=index.name,
                                  num_images=3, deduplicate=False).query(text="blue")
    assert sorted(captions(with_copies)[:2]) == ["blue-copy.png", "blue.png"]
    deduplicated = clip.ClipClient(url=f"{base}/knn-service", indice_name=index.name,
                                   num_images=3, deduplicate=True).query(text="blue")
    assert len(deduplicated) == 3
    assert len({"blue.png", "blue-copy.png"} & set(captions(deduplicated))) == 1


def test_indices_list_metadata_and_a_wrong_index(served) -> None:
    base, index, _, _ = served
    assert httpx.get(f"{base}/indices-list").json() == [index.name]
    hit = httpx.post(f"{base}/knn-service", json={"text": "red", "modality": "image", "num_images": 1,
                                                  "indice_name": index.name}).json()[0]
    meta = httpx.post(f"{base}/metadata", json={"ids": [hit["id"], 10**9], "indice_name": index.name}).json()
    assert meta[0]["id"] == hit["id"] and meta[0]["metadata"]["caption"] == "red.png"
    assert meta[1] == {"id": 10**9, "metadata": {}}
    clip = clip_client_module()
    wrong = clip.ClipClient(url=f"{base}/knn-service", indice_name="laion5B").query(text="red")
    assert "No index named 'laion5B'" in wrong["error"]
