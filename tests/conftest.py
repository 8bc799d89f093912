"""Shared fixtures: an isolated mmsearch home, and small real media files made on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 40),
}


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own MMSEARCH_HOME and no stray MMSEARCH_* settings."""
    for key in list(os.environ):
        if key.startswith("MMSEARCH_") and key != "MMSEARCH_CACHE_DIR":
            monkeypatch.delenv(key)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MMSEARCH_HOME", str(home))
    return home


def make_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (64, 48), stripe: int = 0) -> Path:
    """A solid image with an optional darker stripe (so near-duplicates differ from each other)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    if stripe:
        dark = tuple(c // 2 for c in colour)
        for x in range(stripe, min(stripe + 6, size[0])):
            for y in range(size[1]):
                image.putpixel((x, y), dark)
    image.save(path)
    return path


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """A small folder: four coloured images in three formats, two notes, one corrupt JPEG."""
    root = tmp_path / "media"
    make_image(root / "red.png", COLOURS["red"])
    make_image(root / "photos" / "blue.jpg", COLOURS["blue"], stripe=10)
    make_image(root / "photos" / "green.webp", COLOURS["green"], stripe=30)
    make_image(root / "photos" / "yellow.bmp", COLOURS["yellow"])
    (root / "notes").mkdir()
    (root / "notes" / "bread.md").write_text(
        "# Bread\n\nMix flour, water, salt and yeast. Knead the dough and bake the bread.\n"
    )
    (root / "notes" / "garden.txt").write_text("Plant tomatoes and basil in the garden in spring.\n")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return root
