"""Write the demo's sample media into a folder: public-domain / CC0 photos from scikit-image's
bundled `skimage.data` (their docstrings give each licence), in several formats, the project's
own notes from `samples/notes/`, and sounds made here: synthesised rain, and a spoken voice memo
(espeak-ng, when installed).

Usage: python scripts/make_samples.py DEST
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

# name in skimage.data -> (file name, format); all bundled with the package (no download).
PHOTOS = {
    "chelsea": ("photos/chelsea-the-cat.jpg", "JPEG"),
    "coffee": ("photos/morning-coffee.png", "PNG"),
    "astronaut": ("photos/astronaut.webp", "WEBP"),
    "rocket": ("photos/launch.jpg", "JPEG"),
    "hubble_deep_field": ("space/hubble.jpg", "JPEG"),
    "camera": ("photos/cameraman.tif", "TIFF"),
    "coins": ("collection/coins.png", "PNG"),
    "horse": ("collection/horse.gif", "GIF"),
    "clock": ("photos/clock.bmp", "BMP"),
}


def main(dest: Path) -> None:
    import skimage.data

    dest.mkdir(parents=True, exist_ok=True)
    for name, (relative, fmt) in PHOTOS.items():
        array = getattr(skimage.data, name)()
        if array.dtype == bool:
            array = (~array).astype(np.uint8) * 255
        path = dest / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path, fmt)
    make_sounds(dest / "sounds")
    notes = Path(__file__).resolve().parent.parent / "samples" / "notes"
    shutil.copytree(notes, dest / "notes", dirs_exist_ok=True)
    print(f"sample media written to {dest}")


def make_sounds(folder: Path) -> None:
    """Rain (filtered noise with drops) as Ogg Vorbis; a voice memo as WAV if espeak-ng exists."""
    import soundfile
    from scipy.signal import lfilter

    folder.mkdir(parents=True, exist_ok=True)
    rate = 22_050
    rng = np.random.default_rng(1)
    rain = lfilter([1.0], [1.0, -0.9], rng.standard_normal(20 * rate)) * 0.05
    drop = rng.standard_normal(200) * np.exp(-np.arange(200) / (0.002 * rate)) * 0.3
    for start in rng.integers(0, len(rain) - 200, 2000):
        rain[start : start + 200] += drop
    soundfile.write(folder / "rain-on-the-roof.ogg", rain / np.abs(rain).max() * 0.5, rate)
    memo = "Note to self. Water the tomatoes in the garden, and buy bread at seven."
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-w", str(folder / "voice-memo.wav"), memo], check=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("indexes/samples"))
