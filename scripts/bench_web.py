"""Time from typing to results drawn in the web page, at 10k items, in headless chromium.

SHORTCUT, stated plainly: the collection's vectors are GENERATED (clustered unit vectors, as
in bench_search.py), not encoded from photos; each item is a real small JPEG on disk, so the
thumbnails the page asks for are real. Everything after the vectors is the product's: the
catalog written through its own writer, `mmsearch serve` as a process, the offline model
encoding each query's text, and the page itself in Debian's chromium.

What is measured: `performance.measure("mmsearch-search")` in app.js, from the `input` event
of the search box (one per query: the whole query is put in at once, as a paste) to the frame
after the result cards are in the page (thumbnails still loading); 40 cards a page, "Min
score" set to 0 (the generated vectors all fall below the model's cut-off). It includes the page's
40 ms pause for more typing, the request, the search and the drawing.

Usage:
    .venv/bin/python scripts/bench_web.py [--items 10000] [--queries 50]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "scripts")]

from bench_search import clustered  # noqa: E402
from server_process import running_server  # noqa: E402
from web_browser import launch  # noqa: E402

from mmsearch import Library  # noqa: E402
from mmsearch.encoders.base import SEMANTIC  # noqa: E402
from mmsearch.store.catalog_items import ItemFacts  # noqa: E402

SUBJECTS = ["a cat", "a red car", "the beach", "a bowl of fruit", "snowy mountains", "a dog",
            "a city", "pasta", "football", "a steam train"]
SETTINGS = ["", " at night", " in the rain", " at sunset", " from above"]


def build(folder: Path, items: int, model: str) -> Path:
    """An index of `items` real tiny JPEGs with generated vectors (see the docstring)."""
    media = folder / "media"
    media.mkdir(parents=True)
    index = folder / "index"
    with Library.open(index, model=model) as lib:
        dim = lib.encoder().spaces[SEMANTIC]
        vectors = clustered(items, dim, seed=3)
        lib._spaces.load()
        lib._spaces.ensure({SEMANTIC: dim})
        catalog = lib._catalog
        for start in range(0, items, 5000):
            with catalog.write():
                for i in range(start, min(items, start + 5000)):
                    path = media / f"{i // 1000:02d}" / f"photo{i:05d}.jpg"
                    path.parent.mkdir(exist_ok=True)
                    colour = tuple(int(v) for v in (vectors[i, :3] * 900 + 128).clip(0, 255))
                    Image.new("RGB", (64, 48), colour).save(path, quality=80)
                    stat = path.stat()
                    facts = ItemFacts(str(path), str(media), "image", stat.st_size,
                                      stat.st_mtime_ns, f"h{i}", width=64, height=48)
                    catalog.write_item(facts, {SEMANTIC: vectors[i : i + 1]})
            lib._spaces.refresh()
        lib._spaces.rebuild_all()
    return index


def measure(base: str, queries: list[str]) -> list[float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(base)
        page.wait_for_selector("body[data-ready='1']")
        # generated vectors sit far from any caption: below the model's cut-off, so keep all
        page.locator("#min").fill("0")
        box = page.locator("#q")
        took = []
        for n, query in enumerate(["warm up", *queries]):
            box.fill("")
            page.wait_for_function("() => document.querySelectorAll('#results .card').length === 0")
            page.evaluate("performance.clearMarks(); performance.clearMeasures()")
            box.fill(query)  # one input event, as a paste
            page.wait_for_function(
                "() => performance.getEntriesByName('mmsearch-search').length > 0"
                " && document.querySelectorAll('#results .card').length > 0"
            )
            ms = page.evaluate("performance.getEntriesByName('mmsearch-search')[0].duration")
            if n:
                took.append(ms)
        browser.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--model", default="offline-default")
    args = parser.parse_args()
    queries = [s + t for t in SETTINGS for s in SUBJECTS][: args.queries]
    folder = Path(tempfile.mkdtemp(prefix="mmsearch-bench-web-"))
    try:
        index = build(folder, args.items, args.model)
        with running_server(index) as base:
            took = sorted(measure(base, queries))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    p50 = statistics.median(took)
    p90 = took[int(0.9 * (len(took) - 1))]
    print("SHORTCUT: generated vectors over real tiny JPEGs (see the docstring).")
    print(f"{args.items} items, {len(took)} queries, model {args.model}: typing to results drawn "
          f"p50 {p50:.0f} ms, p90 {p90:.0f} ms, max {took[-1]:.0f} ms (goal p50 <= 150 ms)")


if __name__ == "__main__":
    main()
