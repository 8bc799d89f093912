"""Draw the TUI's main screens into docs/screenshots/*.svg (Textual's save_screenshot).

A small collection is made on the fly (photos from scikit-image, notes, a spoken memo from
espeak-ng when installed, a tone) under a temporary home folder, indexed with the offline
model, and the app is driven through Pilot exactly as in the tests. Images are drawn with
half-blocks, as a terminal without kitty or sixel graphics shows them.

Usage:
    .venv/bin/python scripts/tui_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image
from skimage import data as skimage_data

SIZE = (132, 38)


def make_collection(home: Path) -> dict[str, Path]:
    pictures, notes, sounds = home / "Pictures" / "2024", home / "Notes", home / "Recordings"
    downloads = home / "Downloads"
    for folder in (pictures, notes, sounds, downloads):
        folder.mkdir(parents=True)
    for name, file in {"chelsea": "cat on the rug.jpg", "coffee": "coffee.png", "cat": "kitten.jpg"}.items():
        Image.fromarray(getattr(skimage_data, name)()).save(pictures / file)
    for name, file in {"rocket": "launch.webp", "astronaut": "portrait.jpg"}.items():
        Image.fromarray(getattr(skimage_data, name)()).save(downloads / file)
    (downloads / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (notes / "bread.md").write_text(
        "# Sourdough\n\nMix flour, water and salt with the starter. Let the dough rise overnight, "
        "shape the loaf and bake it at 240 degrees for forty minutes.\n"
    )
    (notes / "garden.txt").write_text("Plant tomatoes and basil in spring; water the garden daily.\n")
    (notes / "trip.md").write_text("Packing list for the mountains: boots, rain jacket, map, snacks.\n")
    memo = sounds / "memo.wav"
    if shutil.which("espeak-ng"):
        subprocess.run(
            ["espeak-ng", "-s", "140", "-w", str(memo),
             ("The team meeting moves to Thursday at nine. Please bring the budget report "
              "and the slides for the new coffee machine.")],
            check=True,
        )
    rate = 22_050
    t = np.arange(int(4 * rate)) / rate
    soundfile.write(sounds / "whistle.wav", 0.4 * np.sin(2 * np.pi * 2500 * t) * (t % 1 < 0.6), rate)
    return {"pictures": pictures.parent, "notes": notes, "sounds": sounds, "downloads": downloads}


async def shoot(out: Path, home: Path, folders: dict[str, Path]) -> None:
    import textual_image.widget as image_widgets

    image_widgets.Image = image_widgets.HalfcellImage  # colour half-blocks in the SVG

    from mmsearch.config import Settings
    from mmsearch.tui import make_app

    app = make_app(home / "index", settings=Settings(model="offline-default"))

    async def settle(pilot) -> None:
        for _ in range(3):
            await pilot.pause(0.2)
            running = [w for w in app.workers if w.group != "index"]
            await asyncio.gather(*(w.wait() for w in running), return_exceptions=True)
            await pilot.pause()

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        box = app.query_one("#search")
        box.value = "a cat lying on a rug"
        await settle(pilot)
        app.query_one("#results").focus()
        await settle(pilot)
        app.save_screenshot(str(out / "search.svg"))

        box.value = "meeting on thursday"
        await settle(pilot)
        app.save_screenshot(str(out / "sound.svg"))

        box.value = "bake bread"
        app.query_one("#results").focus()
        await pilot.press("1", "2")
        await settle(pilot)
        app.save_screenshot(str(out / "filters.svg"))
        await pilot.press("0", "f")
        box.value = "a rocket launch"
        await settle(pilot)

        app.start_index(str(folders["downloads"]))
        while app._cancel_index is not None:
            await pilot.pause(0.2)
        await settle(pilot)
        app.clear_notifications()
        await pilot.pause()
        app.save_screenshot(str(out / "indexing.svg"))

        await pilot.press("f1")
        await pilot.pause(0.3)
        app.save_screenshot(str(out / "help.svg"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ["HOME"] = str(home)  # paths are drawn as ~/...
        os.environ.setdefault("MMSEARCH_HOME", str(home / ".mmsearch"))
        folders = make_collection(home)
        from mmsearch import Library

        with Library.open(home / "index", model="offline-default") as lib:
            lib.index([folders["pictures"], folders["notes"], folders["sounds"]])
        asyncio.run(shoot(args.out.resolve(), home, folders))
    for svg in sorted(args.out.glob("*.svg")):
        print(svg)


if __name__ == "__main__":
    main()
