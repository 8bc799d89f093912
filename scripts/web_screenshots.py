"""Draw the web page into docs/screenshots/web-*.png, in Debian's headless chromium.

The collection is the TUI screenshots' (scripts/tui_screenshots.py: photos from scikit-image,
notes, a spoken memo from espeak-ng, a tone), indexed with the offline model under a temporary
home folder; `mmsearch serve` runs as a process and the page is driven through Playwright as in
tests/test_web_page.py.

Usage:
    .venv/bin/python scripts/web_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "scripts")]

from server_process import running_server
from tui_screenshots import make_collection
from web_browser import launch, search

DESKTOP = {"width": 1280, "height": 820}
PHONE = {"width": 390, "height": 844}


def drawn(page, seconds: float = 20.0) -> None:
    """Wait until the results are in and every thumbnail on screen has decoded (polled from here:
    the page's CSP forbids the eval that `wait_for_function` uses)."""
    deadline = time.monotonic() + seconds
    script = ("[...document.querySelectorAll('#results .card img')].every(i => i.complete)"
              " && document.querySelectorAll('#results .card').length > 0")
    while not page.evaluate(script):
        if time.monotonic() > deadline:
            raise RuntimeError("the results never finished drawing")
        time.sleep(0.1)
    time.sleep(0.3)


def shoot(base: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    shots = []
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport=DESKTOP)
        page.goto(base)
        page.wait_for_selector("body[data-ready='1']")

        search(page, "a cat lying on a rug")
        drawn(page)
        shots.append(out / "web-search.png")
        page.screenshot(path=str(shots[-1]))

        page.locator("#results .card").first.click()
        page.wait_for_selector("#details[open]")
        time.sleep(0.3)
        shots.append(out / "web-details.png")
        page.screenshot(path=str(shots[-1]))
        page.keyboard.press("Escape")

        search(page, "meeting on thursday")
        drawn(page)
        shots.append(out / "web-sound.png")
        page.screenshot(path=str(shots[-1]))

        search(page, 'a red car kind:imgae')
        page.wait_for_selector("#error:not([hidden])")
        time.sleep(0.2)
        shots.append(out / "web-error.png")
        page.screenshot(path=str(shots[-1]))

        phone = browser.new_page(viewport=PHONE, is_mobile=True, device_scale_factor=2)
        phone.goto(base)
        phone.wait_for_selector("body[data-ready='1']")
        search(phone, "bake bread")
        drawn(phone)
        shots.append(out / "web-phone.png")
        phone.screenshot(path=str(shots[-1]))
        browser.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home" / "me"  # folders read ".../me/Pictures/2024/"
        home.mkdir(parents=True)
        os.environ["HOME"] = str(home)  # the page shows folders as ~/...
        os.environ.setdefault("MMSEARCH_HOME", str(home / ".mmsearch"))
        folders = make_collection(home)
        from mmsearch import Library

        with Library.open(home / "index", model="offline-default") as lib:
            lib.index([folders["pictures"], folders["notes"], folders["sounds"]])
        with running_server(home / "index") as base:
            for shot in shoot(base, args.out.resolve()):
                print(shot)


if __name__ == "__main__":
    main()
