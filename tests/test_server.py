"""The HTTP service end to end (httpx through FastAPI's TestClient, real SQLite and FAISS files,
the deterministic model): search, items, thumbnails, files, status, indexing jobs, errors."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from conftest import COLOURS, make_image
from fastapi.testclient import TestClient
from PIL import Image
from server_helpers import indexed_folder

from mmsearch.config import Settings
from mmsearch.server import ServiceConfig, make_app


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    return indexed_folder(tmp_path)


@pytest.fixture
def client(setup: tuple[Path, Path]):
    index, media = setup
    with TestClient(make_app(index, settings=Settings(), config=ServiceConfig(folders=(str(media),)))) as c:
        wait_ready(c)
        yield c


def wait_ready(c: TestClient, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while c.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "the service never became ready"
        time.sleep(0.05)


def names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [Path(h["path"]).name for h in response.json()["hits"]]


def test_text_search_returns_typed_hits_like_the_cli(client: TestClient) -> None:
    r = client.post("/search", json={"text": "red", "k": 3})
    assert names(r)[0] == "red.png"
    hit = r.json()["hits"][0]
    assert set(hit) == {"path", "score", "kind", "scores", "size", "width", "height", "taken_at",
                        "duration", "start", "end", "moments", "id"}
    assert hit["kind"] == "image" and (hit["width"], hit["height"]) == (64, 48)
    assert names(client.get("/search", params={"q": "bake bread", "k": 2}))[0] == "bread.md"


def test_structured_terms_weights_negatives_and_filters(client: TestClient) -> None:
    # a structured negative pushes red away; a kind filter keeps documents out
    r = client.post("/search", json={"terms": [{"text": "blue"}, {"text": "red", "negative": True}],
                                     "kinds": ["image"], "k": 4, "min_score": -1})
    got = names(r)
    assert got[0] == "blue.png" and got[-1] == "red.png"
    assert all(h["kind"] == "image" for h in r.json()["hits"])
    only_md = client.post("/search", json={"text": "bread", "extensions": ["md"], "min_score": -1})
    assert names(only_md) == ["bread.md"]
    bad = client.post("/search", json={"terms": [{"text": 'say "hi"'}]})
    assert bad.status_code == 422 and "double quote" in bad.json()["error"]


def test_example_image_by_path_by_id_and_by_upload(client: TestClient, setup, tmp_path: Path) -> None:
    _, media = setup
    by_path = client.post("/search", json={"images": [str(media / "green.png")], "k": 1})
    assert names(by_path) == ["green.png"]
    green_id = by_path.json()["hits"][0]["id"]
    assert names(client.post("/search", json={"image_ids": [green_id], "k": 1})) == ["green.png"]
    probe = make_image(tmp_path / "probe.png", COLOURS["yellow"], size=(80, 60))
    with probe.open("rb") as f:
        up = client.post("/search/upload", data={"query": '{"k": 1}'}, files={"images": ("probe.png", f, "image/png")})
    assert names(up) == ["yellow.png"]
    # the uploaded example was a temp file: nothing of it is left in the index or on disk
    assert all("example-" not in h["path"] for h in up.json()["hits"])


def test_item_metadata_thumbnail_and_file(client: TestClient, setup) -> None:
    _, media = setup
    hit = client.post("/search", json={"text": "blue", "k": 1}).json()["hits"][0]
    info = client.get(f"/items/{hit['id']}").json()
    assert info["path"] == hit["path"] and info["status"] == "ok" and info["kind"] == "image"
    for size in (16, 32):
        r = client.get(f"/items/{hit['id']}/thumbnail", params={"size": size})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(r.content)).size) == size
    assert client.get(f"/items/{hit['id']}/thumbnail", params={"size": 5000}).status_code == 422
    original = client.get(f"/items/{hit['id']}/file")
    assert original.content == (media / "blue.png").read_bytes()
    doc = client.post("/search", json={"text": "bread", "kinds": ["text"], "k": 1}).json()["hits"][0]
    r = client.get(f"/items/{doc['id']}/thumbnail")
    assert r.status_code == 404 and "not an image" in r.json()["error"]
    r = client.get(f"/items/{doc['id']}/preview")
    assert r.status_code == 404 and "not a recording" in r.json()["error"]


def test_status_stats_health(client: TestClient, setup) -> None:
    _, media = setup
    assert client.get("/health").json() == {"status": "ok"}
    status = client.get("/status").json()
    assert status["ready"] and status["items"] == {"image": 4, "text": 1}
    assert status["folders"] == [str(media)] and status["limits"]["max_k"] == 1000
    stats = client.get("/stats").json()
    assert stats["roots"] == [str(media)] and stats["model"] == "hash-test"


def test_indexing_job_adds_files_while_searches_go_on(client: TestClient, setup) -> None:
    _, media = setup
    for n in range(40):
        make_image(media / "new" / f"img{n:02d}.png", (60, 100 + n * 3, 60 + n), stripe=n % 50)
    job = client.post("/index/jobs", json={}).json()
    assert job["state"] == "running" and job["folders"] == [str(media)]
    again = client.post("/index/jobs", json={})
    assert again.status_code == 409 and "running already" in again.json()["error"]
    while (state := client.get(f"/index/jobs/{job['id']}").json())["state"] == "running":
        assert names(client.post("/search", json={"text": "red", "k": 1})) == ["red.png"]
        time.sleep(0.02)
    assert state["state"] == "done" and state["report"]["added"] == 40, state
    found = client.post("/search", json={"images": [str(media / "new" / "img07.png")], "k": 1})
    assert names(found) == ["img07.png"]
    assert client.get("/status").json()["items"]["image"] == 44


def test_a_job_can_be_cancelled_and_keeps_what_it_committed(setup, tmp_path: Path) -> None:
    index, media = setup
    for n in range(300):
        make_image(media / "many" / f"m{n:03d}.png", (n % 256, 80, 200 - n % 200), stripe=n % 50)
    settings = Settings(batch_size=4)
    with TestClient(make_app(index, settings=settings)) as c:
        job = c.post("/index/jobs", json={"folders": [str(media / "many")]}).json()
        while c.get(f"/index/jobs/{job['id']}").json()["done"] < 8:
            time.sleep(0.01)
        c.delete(f"/index/jobs/{job['id']}")
        while (state := c.get(f"/index/jobs/{job['id']}").json())["state"] == "running":
            time.sleep(0.02)
        assert state["state"] == "cancelled", state
        kept = c.get("/status").json()["items"]["image"]
        assert 4 < kept < 304


def test_job_folders_must_be_configured(client: TestClient, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    r = client.post("/index/jobs", json={"folders": [str(other)]})
    assert r.status_code == 404 and "not a folder this service indexes" in r.json()["error"]
    r = client.post("/index/jobs", json={"folders": ["/"]})
    assert r.status_code == 404


def test_errors_are_json_with_a_message(client: TestClient) -> None:
    cases = [
        (client.post("/search", json={}), 400, "Nothing to search for"),
        (client.post("/search", json={"text": "x", "k": 5000}), 413, "limit of 1000"),
        (client.post("/search", json={"text": '2:"never closed'}), 400, "never closed"),
        (client.post("/search", content=b"{not json", headers={"content-type": "application/json"}), 422, "does not match"),
        (client.get("/items/999999"), 404, "No item with id"),
        (client.get("/no/such/route"), 404, "No such route"),
        (client.post("/search", json={"text": "x", "surprise": 1}), 422, "surprise"),
        (client.get("/index/jobs/77"), 404, "No indexing job 77"),
        # found by schemathesis: the full-text index took a NUL for damage ("restore a backup")
        (client.get("/search", params={"q": "a\x00b"}), 400, "NUL character"),
    ]
    for response, code, words in cases:
        assert response.status_code == code, response.text
        body = response.json()
        assert words in body["error"], body
        assert "Traceback" not in response.text


def test_no_cors_unless_configured(setup) -> None:
    index, _ = setup
    origin = {"Origin": "https://example.org"}
    with TestClient(make_app(index, settings=Settings(), warm_up=False)) as c:
        assert "access-control-allow-origin" not in c.get("/health", headers=origin).headers
    config = ServiceConfig(cors_origins=("https://example.org",))
    with TestClient(make_app(index, settings=Settings(), config=config, warm_up=False)) as c:
        assert c.get("/health", headers=origin).headers["access-control-allow-origin"] == "https://example.org"


def test_a_new_index_is_created_and_served_empty(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path / "fresh", settings=Settings(model="hash-test"))) as c:
        assert c.get("/status").json()["items"] == {}
        assert c.post("/search", json={"text": "anything"}).json()["hits"] == []


def test_audio_preview_is_a_wav_excerpt(tmp_path: Path) -> None:
    import numpy as np
    import soundfile

    media = tmp_path / "media"
    media.mkdir()
    rate = 16000
    t = np.arange(rate * 20) / rate
    soundfile.write(media / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t), rate)
    index = tmp_path / "index"
    from mmsearch import Library

    with Library.open(index, model="hash-test", settings=Settings()) as lib:
        lib.index([media])
        tone = lib.item(media / "tone.wav").id
    with TestClient(make_app(index, settings=Settings(), warm_up=False)) as c:
        r = c.get(f"/items/{tone}/preview", params={"start": 5, "seconds": 4})
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        samples, got_rate = soundfile.read(io.BytesIO(r.content))
        assert got_rate == 22050 and len(samples) == 4 * 22050
        assert 0.15 < float(np.abs(samples).max()) < 0.35  # the tone, not silence
        # more than the recording holds: what it holds; from past its end: a JSON error
        long = c.get(f"/items/{tone}/preview", params={"start": 0, "seconds": 600})
        assert len(soundfile.read(io.BytesIO(long.content))[0]) == 20 * 22050
        past = c.get(f"/items/{tone}/preview", params={"start": 100})
        assert past.status_code == 422 and "shorter than" in past.json()["error"]


def test_a_job_fails_plainly_when_another_process_writes(setup) -> None:
    import fcntl

    index, _ = setup
    with open(index / "write.lock", "w") as lock, TestClient(make_app(index, settings=Settings(), warm_up=False)) as c:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        job = c.post("/index/jobs", json={}).json()
        while (state := c.get(f"/index/jobs/{job['id']}").json())["state"] == "running":
            time.sleep(0.02)
        assert state["state"] == "failed" and "Another mmsearch process is writing" in state["error"]
        assert c.post("/search", json={"text": "red", "k": 1}).json()["hits"]  # searches go on
