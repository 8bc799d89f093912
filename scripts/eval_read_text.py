"""Words read in images: does searching for a word find the image that shows it, and what does
reading cost?

Builds a small set of images with text, as a user's collection has them:
  signs     a word on a board pasted onto real photos (../shared/data/coco_mini)
  pages     "screenshots" of this project's own docs: README lines rendered as a page
plus as many of the same photos without text (distractors), indexes them twice with the
offline default (reading text in images off, then on), and reports for each word / doc line:
R@1 and R@5 of word -> its image, with and without reading; and the indexing rate of both runs
(the cost of reading: its images/s and the share of plain photos the cheap first look skips).

Goal (issue 7): word -> image R@1 >= 0.9 with reading on.

Usage:
    .venv/bin/python scripts/eval_read_text.py [--data ../shared/data] [--n 40] [--work DIR]
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from mmsearch import Library
from mmsearch.config import Settings

WORDS = [
    "Lighthouse", "Bakery", "Pharmacy", "Harbour", "Museum", "Garage", "Library", "Station",
    "Theatre", "Market", "Cinema", "Stadium", "Hospital", "Airport", "Florist", "Butcher",
    "Laundry", "Bicycle", "Camping", "Festival", "Pottery", "Gallery", "Dentist", "Brewery",
    "Orchard", "Vineyard", "Bookshop", "Jeweller", "Bistro", "Chapel", "Tailor", "Plumber",
    "Aquarium", "Planetarium", "Observatory", "Greenhouse", "Carousel", "Windmill", "Ferry",
    "Boutique", "Pretzel", "Lantern", "Sawmill", "Tannery", "Quarry", "Kayaking", "Arcade",
    "Dairy", "Cobbler", "Bakehouse",
]  # fmt: skip


def sign_on_photo(photo: Path, word: str, out: Path, rng: random.Random) -> None:
    image = Image.open(photo).convert("RGB")
    width, height = image.size
    size = max(18, int(min(width, height) * rng.uniform(0.07, 0.12)))
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(image)
    box = draw.textbbox((0, 0), word, font=font)
    tw, th = box[2] - box[0], box[3] - box[1]
    x = rng.randint(0, max(0, width - tw - 20))
    y = rng.randint(0, max(0, height - th - 20))
    board = rng.choice([(250, 250, 240), (20, 60, 140), (200, 30, 30)])
    ink = (20, 20, 20) if sum(board) > 500 else (250, 250, 250)
    draw.rectangle((x, y, x + tw + 20, y + th + 20), fill=board)
    draw.text((x + 10 - box[0], y + 10 - box[1]), word, fill=ink, font=font)
    image.save(out, quality=90)


def doc_page(lines: list[str], out: Path) -> None:
    font = ImageFont.load_default(size=20)
    image = Image.new("RGB", (900, 40 + 30 * len(lines)), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((20, 20 + 30 * i), line, fill=(30, 30, 30), font=font)
    image.save(out)


def rare_word(lines: list[str], used: set[str]) -> str | None:
    """A long word of a page that no other page has (what a user would search for)."""
    for line in lines:
        for word in re.findall(r"(?<![A-Za-z])[A-Za-z]{7,}(?=[^A-Za-z])", line):  # whole words
            if word.lower() not in used:
                return word
    return None


def build(data: Path, folder: Path, n: int) -> dict[str, str]:
    """Writes the images; returns query -> file name."""
    rng = random.Random(7)
    photos = sorted((data / "coco_mini").rglob("*.jpg"))
    rng.shuffle(photos)
    folder.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, str] = {}
    repo = Path(__file__).resolve().parent.parent
    text = [
        line.strip("#*`|- ")
        for doc in ("README.md", "ARCHITECTURE.md")
        for line in (repo / doc).read_text().splitlines()
        if len(line.strip("#*`|- ")) > 30
    ]
    pages = [[line[:80] for line in text[i : i + 12]] for i in range(0, len(text), 12)]
    pages = pages[: n // 2]
    on_pages = " ".join(" ".join(p) for p in pages).lower()
    # A sign's word must be on no page: each query has one right answer.
    signs = [w for w in WORDS if w.lower() not in on_pages]
    if len(signs) < n:
        raise SystemExit(f"only {len(signs)} sign words are not on the doc pages; use --n {len(signs)}")
    for i, word in enumerate(signs[:n]):
        name = f"IMG_{1000 + i}.jpg"
        sign_on_photo(photos[i], word, folder / name, rng)
        wanted[word] = name
    for i, photo in enumerate(photos[n : 2 * n]):  # distractors: the same kind of photo, no text
        shutil.copy(photo, folder / f"IMG_{2000 + i}.jpg")
    used = {w.lower() for w in WORDS}
    for number, lines in enumerate(pages):
        others = " ".join(" ".join(p) for j, p in enumerate(pages) if j != number).lower()
        word = rare_word(lines, used | set(re.findall(r"[a-z]+", others)))
        if word is None:
            continue
        used.add(word.lower())
        name = f"Screenshot_{number:03}.png"
        doc_page(lines, folder / name)
        wanted[word] = name
    return wanted


def measure(folder: Path, index: Path, wanted: dict[str, str], read: bool) -> dict[str, float]:
    settings = Settings(read_text_in_images=read)
    with Library.open(index, model="offline-default", settings=settings) as lib:
        lib.encoder()  # load the model outside the timing
        started = time.perf_counter()
        report = lib.index([folder])
        seconds = time.perf_counter() - started
        ranks = []
        for word, name in wanted.items():
            hits = lib.search(word, k=10, min_score=-1)
            names = [Path(h.path).name for h in hits]
            ranks.append(names.index(name) + 1 if name in names else 99)
            if read and ranks[-1] != 1:
                seen = lib.item(folder / name).read_text
                print(f"  miss: {word!r} -> {name} ranked {ranks[-1] if ranks[-1] < 99 else '>10'}; "
                      f"top {names[:1]}; read in it: {seen[:3]}")
    files = report.added
    return {
        "R@1": sum(r == 1 for r in ranks) / len(ranks),
        "R@5": sum(r <= 5 for r in ranks) / len(ranks),
        "img_per_s": files / seconds,
        "read_text_s": report.stage_seconds.get("read_text", 0.0),
        "files": files,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--n", type=int, default=40, help="photos with a sign (and as many without)")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="mmsearch-ocr-"))
    try:
        wanted = build(args.data, work / "media", args.n)
        off = measure(work / "media", work / "index-off", wanted, read=False)
        on = measure(work / "media", work / "index-on", wanted, read=True)
        signs = sum(1 for n in wanted.values() if n.startswith("IMG_"))
        print(f"queries: {len(wanted)} ({signs} signs on photos, {len(wanted) - signs} doc pages); "
              f"files: {on['files']}")
        print("| reading text | word -> image R@1 | R@5 | indexing img/s | time reading (s) |")
        print("|---|---|---|---|---|")
        for label, r in (("off", off), ("on", on)):
            print(f"| {label} | {r['R@1']:.3f} | {r['R@5']:.3f} | {r['img_per_s']:.2f} | {r['read_text_s']:.1f} |")
        print(f"cost: reading text runs indexing at {on['img_per_s'] / off['img_per_s']:.2f}x the rate without it")
        print("goal R@1 >= 0.9:", "met" if on["R@1"] >= 0.9 else "MISSED")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
