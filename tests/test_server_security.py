"""The service never serves or reads a file outside the indexed folders, needs its token when it
has one, and holds its limits; every refusal is a JSON error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import COLOURS, make_image
from fastapi.testclient import TestClient
from server_helpers import indexed_folder

from mmsearch import Library
from mmsearch.config import Settings
from mmsearch.server import ServiceConfig, make_app

ITEM_ROUTES = ("/items/{}", "/items/{}/file", "/items/{}/thumbnail", "/items/{}/preview")


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    index, media = indexed_folder(tmp_path)
    secret = make_image(tmp_path / "secret" / "secret.png", COLOURS["red"])
    return index, media, secret


def client_for(index: Path, **config: object) -> TestClient:
    return TestClient(make_app(index, settings=Settings(), config=ServiceConfig(**config), warm_up=False))


def item_id(c: TestClient, name: str) -> int:
    hits = c.post("/search", json={"text": name.split(".")[0], "k": 10, "min_score": -1}).json()["hits"]
    return next(h["id"] for h in hits if Path(h["path"]).name == name)


def refused(response, *codes: int) -> None:
    assert response.status_code in codes, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert "error" in response.json() and "Traceback" not in response.text


def test_traversal_in_item_routes_is_refused(setup) -> None:
    index, _, secret = setup
    with client_for(index) as c:
        attempts = [
            "..%2f..%2fsecret%2fsecret.png", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..", "-1", "0",
            "1%2f..%2f2", str(secret).replace("/", "%2f"), "9223372036854775808", "1.5", "0x10",
        ]
        for attempt in attempts:
            for route in ITEM_ROUTES:
                r = c.get(route.format(attempt))
                if r.request.url.path == "/":
                    # The client folds "/items/.." to "/" before sending: the search page answers.
                    assert r.headers["content-type"].startswith("text/html")
                else:
                    refused(r, 404, 422)
                assert secret.read_bytes() != r.content
        for raw in ("/items/../../secret/secret.png", "//etc/passwd", "/items/1/../../../etc/passwd",
                    "/items/%2e%2e/file", "/%2e%2e/%2e%2e/etc/passwd"):
            refused(c.get(raw), 404, 422)


def test_example_paths_outside_the_index_are_never_read(setup) -> None:
    index, media, secret = setup
    with client_for(index) as c:
        for path in (str(secret), f"{media}/../secret/secret.png", "/etc/passwd",
                     "../../secret/secret.png", f"{media}/%2e%2e/secret/secret.png"):
            refused(c.post("/search", json={"images": [path]}), 404)
            refused(c.post("/search", json={"audios": [path]}), 404)
        refused(c.post("/search", json={"images": ["/tmp/\x00x"]}), 400)
        refused(c.post("/search", json={"image_ids": [10**6]}), 404)


def test_a_file_swapped_for_a_symlink_out_of_the_folder_is_not_served(setup) -> None:
    index, media, secret = setup
    with client_for(index) as c:
        yellow = item_id(c, "yellow.png")
        assert c.get(f"/items/{yellow}/file").status_code == 200
        (media / "yellow.png").unlink()
        os.symlink(secret, media / "yellow.png")
        for route in ITEM_ROUTES[1:3]:
            r = c.get(route.format(yellow))
            refused(r, 404)
            assert r.content != secret.read_bytes()
        refused(c.post("/search", json={"image_ids": [yellow]}), 404)
        refused(c.post("/search", json={"images": [str(media / "yellow.png")]}), 404)


def test_a_symlinked_folder_leading_out_is_not_served(tmp_path: Path) -> None:
    media = tmp_path / "media"
    make_image(media / "inside.png", COLOURS["blue"])
    outside = make_image(tmp_path / "outside" / "photo.png", COLOURS["green"])
    os.symlink(outside.parent, media / "link")
    index = tmp_path / "index"
    with Library.open(index, model="hash-test", settings=Settings()) as lib:
        lib.index([media])
    with client_for(index) as c:
        hits = c.post("/search", json={"text": "green", "k": 10, "min_score": -1}).json()["hits"]
        served = []
        for hit in hits:
            r = c.get(f"/items/{hit['id']}/file")
            if Path(hit["path"]).resolve().is_relative_to(media.resolve()):
                assert r.status_code == 200
                served.append(Path(hit["path"]).name)
            else:  # indexed through the link: its real place lies outside the folder
                refused(r, 404)
                assert r.content != outside.read_bytes()
        assert served == ["inside.png"] and len(hits) == 2


def test_removed_items_are_gone(setup) -> None:
    index, media, _ = setup
    with client_for(index) as c:
        blue = item_id(c, "blue.png")
        with Library.open(index) as lib:
            lib.remove(media / "blue.png")
        for route in ITEM_ROUTES:
            refused(c.get(route.format(blue)), 404)
        refused(c.post("/search", json={"image_ids": [blue]}), 404)


def test_job_folders_cannot_escape(setup) -> None:
    index, media, secret = setup
    with client_for(index) as c:
        for folder in (str(secret.parent), f"{media}/..", "/", "..", f"{media}/../secret"):
            refused(c.post("/index/jobs", json={"folders": [folder]}), 404)
        refused(c.post("/index/jobs", json={"folders": ["a\x00b"]}), 400)


def test_token_is_needed_on_every_route(setup) -> None:
    index, _, _ = setup
    with client_for(index, token="s3cret") as c:
        for method, route in (("GET", "/health"), ("GET", "/docs"), ("GET", "/openapi.json"),
                              ("POST", "/search"), ("GET", "/items/1/file"), ("POST", "/knn-service"),
                              ("GET", "/indices-list"), ("GET", "/nowhere")):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                            {"Authorization": "Basic s3cret"}):
                r = c.request(method, route, headers=headers, json={"text": "red"})
                refused(r, 401)
                assert r.headers["www-authenticate"] == "Bearer"
        ok = c.post("/search", json={"text": "red", "k": 1}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["hits"]
        schema = c.get("/openapi.json", headers={"Authorization": "Bearer s3cret"}).json()
        assert schema["security"] == [{"bearer": []}]


def test_limits(setup, tmp_path: Path) -> None:
    index, _, _ = setup
    big = make_image(tmp_path / "big.png", COLOURS["blue"], size=(200, 150))
    with client_for(index, max_upload_bytes=2000, max_image_pixels=5000, max_k=20) as c:
        refused(c.post("/search", json={"text": "red", "k": 21}), 413)
        refused(c.get("/search", params={"q": "red", "k": 21}), 413)
        payload = b"x" * 3000
        refused(c.post("/search/upload", files={"images": ("a.png", payload, "image/png")}), 413)
        refused(c.post("/search/upload", content=payload, headers={"content-type": "application/json"}), 413)
    with client_for(index, max_image_pixels=5000) as c:
        with big.open("rb") as f:
            r = c.post("/search/upload", files={"images": ("big.png", f, "image/png")})
        refused(r, 413)
        assert "30000 pixels" in r.json()["error"]
        refused(c.post("/search/upload", files={"images": ("x.png", b"not an image", "image/png")}), 400)
    with client_for(index, request_seconds=1e-6) as c:
        r = c.post("/search", json={"text": "red"})
        refused(r, 504)
        assert "abandoned" in r.json()["error"]
