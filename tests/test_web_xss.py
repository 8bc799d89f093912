"""No file name, folder name or file content can run script in the web page: hostile names and a
hostile note are indexed, searched and opened in a real chromium, with every way a script could
show itself watched (alert/confirm/prompt dialogs, page errors, console errors, a canary)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_image
from server_process import running_server
from web_browser import chromium_path, launch, search

from mmsearch import Library
from mmsearch.config import Settings

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="chromium is not installed (apt-get install chromium)"
)
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = playwright_api.expect

FOLDER = "<b onmouseover=alert(3)>x"
IMAGE = "<img src=x onerror=alert(1)>.png"
NOTE = '"><svg onload=window.__xss=1>.md'
LINK = "javascript:alert(2).txt"
BODY = (
    "A hostile note <script>window.__xss = 1; alert(4)</script> "
    '<img src=x onerror="window.__xss=1"> <a href="javascript:alert(5)">click</a> javascript:alert(6)\n'
)


def test_hostile_names_and_contents_stay_text(tmp_path: Path) -> None:
    media = tmp_path / "media" / FOLDER
    media.mkdir(parents=True)
    make_image(media / IMAGE, (200, 30, 30))
    (media / NOTE).write_text(BODY)
    (media / LINK).write_text("alert alert: javascript:alert(2)\n")
    index = tmp_path / "index"
    with Library.open(index, model="hash-test", settings=Settings()) as lib:
        assert lib.index([tmp_path / "media"]).added == 3
    fired: list[str] = []
    with running_server(index) as base, playwright_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        page.on("dialog", lambda d: (fired.append(f"dialog {d.message}"), d.dismiss()))
        page.on("pageerror", lambda exc: fired.append(f"error {exc}"))
        # console errors include CSP refusals ("Refused to execute ..."); the query mistake's 400
        # answer is the one expected error and is not a script
        page.on("console", lambda m: fired.append(f"console {m.text}")
                if m.type == "error" and "status of 400" not in m.text else None)
        page.add_init_script("window.__xss = 0")
        page.goto(base)
        expect(page.locator("body")).to_have_attribute("data-ready", "1")
        search(page, "alert javascript hostile note min:-1")
        names = page.locator("#results .card .name")
        expect(names).to_have_count(3)
        assert sorted(names.all_inner_texts()) == sorted([IMAGE, NOTE, LINK])  # literally
        assert all(f.endswith(FOLDER) for f in page.locator("#results .card .folder").all_inner_texts())
        for i in range(3):  # open each one's details, hover everything
            card = page.locator("#results .card").nth(i)
            card.hover()
            card.click()
            expect(page.locator("#details h2")).to_be_visible()
            page.locator("#details .path").hover()
            if page.locator("#details h2").inner_text() == NOTE:
                expect(page.locator("#details pre.text")).to_have_text(BODY.rstrip("\n"))
            page.keyboard.press("Escape")
        # a query with markup in it is shown as text in the error, too
        search(page, 'kind:<img src=x onerror=alert(7)>')
        expect(page.locator("#error")).to_contain_text("<img src=x onerror=alert(7)>")
        page.wait_for_timeout(300)  # let any late handler (image errors) run
        assert page.evaluate("window.__xss") == 0
        assert page.locator("#results img:not([src^='/items/'])").count() == 0
        assert page.locator("script:not([src='/web/app.js'])").count() == 0
        assert page.locator("#results a, #details a, [onerror], [onload], [onmouseover]").count() == 0
        browser.close()
    assert fired == []
