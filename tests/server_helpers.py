"""Shared by the service tests: a small indexed folder and the app over it (deterministic model)."""

from __future__ import annotations

from pathlib import Path

from conftest import COLOURS, make_image

from mmsearch import Library
from mmsearch.config import Settings

MODEL = "hash-test"


def indexed_folder(tmp_path: Path) -> tuple[Path, Path]:
    """(index folder, media folder): four coloured images and a note, indexed."""
    media = tmp_path / "media"
    for name, colour in COLOURS.items():
        make_image(media / f"{name}.png", colour)
    (media / "notes").mkdir()
    (media / "notes" / "bread.md").write_text("Knead the dough and bake the bread.\n")
    index = tmp_path / "index"
    with Library.open(index, model=MODEL, settings=Settings()) as lib:
        lib.index([media])
    return index, media
