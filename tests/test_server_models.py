"""The service over the real offline model (MiniLM text, EfficientNet images), through httpx."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageEnhance

from mmsearch import Library
from mmsearch.config import Settings
from mmsearch.server import make_app

NOTES = Path(__file__).resolve().parents[1] / "samples" / "notes"
pytestmark = pytest.mark.models


def drawing(path: Path, kind: str, colour: tuple[int, int, int]) -> Path:
    """A picture with structure (so the visual space has something to tell apart)."""
    image = Image.new("RGB", (160, 120), (245, 245, 240))
    draw = ImageDraw.Draw(image)
    if kind == "stripes":
        for x in range(0, 160, 16):
            draw.rectangle([x, 0, x + 7, 119], fill=colour)
    elif kind == "circle":
        draw.ellipse([30, 10, 130, 110], fill=colour)
    else:
        for x in range(0, 160, 20):
            for y in range(0, 120, 20):
                if (x + y) // 20 % 2 == 0:
                    draw.rectangle([x, y, x + 19, y + 19], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("served")
    media = tmp / "media"
    for note in NOTES.glob("*.*"):
        (media / note.name).parent.mkdir(parents=True, exist_ok=True)
        (media / note.name).write_bytes(note.read_bytes())
    drawing(media / "stripes.png", "stripes", (200, 40, 40))
    drawing(media / "circle.png", "circle", (40, 60, 200))
    drawing(media / "checks.png", "checks", (30, 150, 60))
    with Library.open(tmp / "index", settings=Settings()) as lib:
        lib.index([media])
    with TestClient(make_app(tmp / "index", settings=Settings())) as c:
        deadline = time.monotonic() + 120
        while c.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        yield c, tmp


def names(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [Path(h["path"]).name for h in r.json()["hits"]]


def test_text_queries_find_the_right_document(client) -> None:
    c, _ = client
    assert names(c.post("/search", json={"text": "baking sourdough bread", "k": 3}))[0] == "sourdough.md"
    assert names(c.get("/search", params={"q": "stars and planets in the night sky"}))[0] == "telescope.md"


def test_an_uploaded_near_duplicate_finds_its_original(client) -> None:
    c, tmp = client
    original = Image.open(tmp / "media" / "circle.png")
    copy = ImageEnhance.Brightness(original.resize((120, 90))).enhance(1.15)
    path = tmp / "copy.jpg"
    copy.save(path, quality=80)
    with path.open("rb") as f:
        r = c.post("/search/upload", data={"query": '{"kinds": ["image"], "k": 3}'},
                   files={"images": ("copy.jpg", f, "image/jpeg")})
    assert names(r)[0] == "circle.png"
    first, second = r.json()["hits"][:2]
    assert first["scores"]["visual"] > second["scores"]["visual"] + 0.05
