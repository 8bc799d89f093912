"""Write the demo's sample media into a folder: public-domain / CC0 photos from scikit-image's
bundled `skimage.data` (their docstrings give each licence), in several formats, plus the
project's own notes from `samples/notes/`.

Usage: python scripts/make_samples.py DEST
"""

from __future__ import annotations

import shutil
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
    notes = Path(__file__).resolve().parent.parent / "samples" / "notes"
    shutil.copytree(notes, dest / "notes", dirs_exist_ok=True)
    print(f"sample media written to {dest}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("indexes/samples"))
