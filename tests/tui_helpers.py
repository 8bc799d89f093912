"""Shared by the TUI tests: a small indexed collection and ways to wait for the app's workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import soundfile
from conftest import COLOURS, make_image
from textual.pilot import Pilot

from mmsearch import Library
from mmsearch.config import Settings
from mmsearch.tui import make_app
from mmsearch.tui.app import MmsearchApp

MODEL = "hash-test"
SIZE = (120, 34)


def tone(path: Path, freq: float, seconds: float, rate: int = 22_050) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, 0.4 * np.sin(2 * np.pi * freq * t), rate)
    return path


def collection(root: Path) -> Path:
    """Images, notes and sounds: what a user's folder might hold, in miniature."""
    make_image(root / "red.png", COLOURS["red"])
    make_image(root / "photos" / "blue.jpg", COLOURS["blue"], stripe=10)
    make_image(root / "photos" / "blue-copy.jpg", COLOURS["blue"], stripe=12)
    make_image(root / "photos" / "green.webp", COLOURS["green"], stripe=30)
    (root / "notes").mkdir(parents=True, exist_ok=True)
    (root / "notes" / "bread.md").write_text(
        "# Bread\n\nMix flour, water, salt and yeast. Knead the dough and bake the bread.\n"
    )
    (root / "notes" / "garden.txt").write_text("Plant tomatoes and basil in the garden in spring.\n")
    tone(root / "sounds" / "hum.wav", 150, 3.0)
    tone(root / "sounds" / "whistle.wav", 3000, 2.0)
    return root


def build_index(tmp_path: Path, root: Path | None = None) -> Path:
    media = collection(root or tmp_path / "media")
    index = tmp_path / "index"
    with Library.open(index, model=MODEL) as lib:
        lib.index([media])
    return index


def app_for(index: Path, **settings: object) -> MmsearchApp:
    return make_app(index, settings=Settings(**{"model": MODEL, **settings}))


@asynccontextmanager
async def running(index: Path, **settings: object) -> AsyncIterator[tuple[MmsearchApp, Pilot]]:
    """The app on `index`, started headless, with the index open and the model loaded."""
    app = app_for(index, **settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        yield app, pilot


async def settle(pilot: Pilot, rounds: int = 3, indexing: bool = False) -> None:
    """Let the debounce timer fire and the workers (open, search, preview; indexing too when
    `indexing`) finish."""
    for _ in range(rounds):
        await pilot.pause(0.08)
        running = [w for w in pilot.app.workers if indexing or w.group != "index"]
        await asyncio.gather(*(w.wait() for w in running), return_exceptions=True)
        await pilot.pause()


async def search(pilot: Pilot, text: str) -> None:
    """Put `text` in the search box (as a paste would) and wait for the results."""
    box = pilot.app.query_one("#search")
    box.focus()
    box.value = text
    await settle(pilot)


def row_names(app: MmsearchApp) -> list[str]:
    return [Path(h.path).name for h in app.hits]


def table_names(app: MmsearchApp) -> list[str]:
    """The file names of the rows as drawn (each row checked to show its hit's name)."""
    rows = app.query_one("#results")
    names = []
    for i in range(rows.option_count):
        name = Path(app.hits[i].path).name
        assert name in rows.row_text(i), f"row {i} does not show {name}"
        names.append(name)
    return names


def rendered(widget: object) -> str:
    """A Static's content as plain text."""
    return str(widget.render())  # type: ignore[attr-defined]
