"""Shared by the web page's browser tests and scripts: Debian's chromium driven by Playwright.

Browsers cannot be downloaded here (`playwright install` is never run): Playwright launches the
system's chromium (`apt-get install chromium`) through `executable_path`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "/usr/lib/chromium/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str | None:
    """The system chromium, or None when it is not installed."""
    for candidate in CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return shutil.which("chromium")


def launch(playwright):  # noqa: ANN001, ANN201 - Playwright's own types
    """A headless chromium browser (the system's)."""
    path = chromium_path()
    if path is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=path, headless=True)


def search(page, text: str) -> None:  # noqa: ANN001
    """Type `text` into the search box as a user would (the box cleared first)."""
    box = page.locator("#q")
    box.fill("")
    box.press_sequentially(text)


def first_names(page, n: int = 3) -> list[str]:  # noqa: ANN001
    return page.locator("#results .card .name").all_inner_texts()[:n]
