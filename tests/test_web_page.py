"""The web search page (`GET /` of `mmsearch serve`) in a real headless chromium: the offline
model over real photos and a note, searched by typing, by "more like this", by an uploaded
example and with a filter; query mistakes with their caret; keyboard; a phone-sized screen;
and a token-protected server."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from PIL import Image
from server_helpers import indexed_folder
from server_process import running_server
from web_browser import chromium_path, first_names, launch, search

from mmsearch import Library

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="chromium is not installed (apt-get install chromium)"
)
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = playwright_api.expect


def loaded(page, selector: str, seconds: float = 15.0) -> None:
    """Wait until the image at `selector` has decoded. Polled from here: `wait_for_function`
    evaluates its predicate with eval inside the page, which the page's CSP rightly forbids."""
    import time

    deadline = time.monotonic() + seconds
    script = f"(document.querySelector({selector!r}) || {{}}).naturalWidth > 0"
    while not page.evaluate(script):
        assert time.monotonic() < deadline, f"{selector} never loaded"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(index, media): three real photos and a note, indexed with the offline model."""
    from skimage import data as skimage_data

    root = tmp_path_factory.mktemp("web-offline")
    media = root / "media"
    media.mkdir()
    for name, file in {"chelsea": "cat.jpg", "coffee": "coffee.png", "rocket": "launch.webp"}.items():
        Image.fromarray(getattr(skimage_data, name)()).save(media / file)
    (media / "bread.md").write_text(
        "Sourdough: mix flour, water and salt with the starter, let the dough rise, bake the loaf."
    )
    with Library.open(root / "index", model="offline-default") as lib:
        assert lib.index([media]).added == 4
    return root / "index", media


@pytest.fixture(scope="module")
def server(photos: tuple[Path, Path]):
    with running_server(photos[0]) as base:
        yield base


@pytest.fixture
def page(browser, server: str):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server)
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    yield page
    context.close()
    assert errors == [], errors  # no script error in the page, whatever the test did


@pytest.mark.models
def test_a_cat_comes_first_with_its_thumbnail_and_details(page) -> None:
    search(page, "a cat")
    first = page.locator("#results .card").first
    expect(first.locator(".name")).to_have_text("cat.jpg")
    expect(first.locator(".kind")).to_have_text("image")
    assert re.fullmatch(r"\d\.\d\d", first.locator(".score").inner_text())
    assert first.locator(".folder").inner_text().endswith("media")
    loaded(page, "#results img")
    first.click()
    details = page.locator("#details")
    expect(details).to_be_visible()
    expect(details.locator("h2")).to_have_text("cat.jpg")
    expect(details.locator("dl")).to_contain_text("451 × 300")  # the photo's own pixels
    loaded(page, "#details img.large")
    page.keyboard.press("Escape")
    expect(details).to_be_hidden()


@pytest.mark.models
def test_more_like_this_from_the_keyboard(page) -> None:
    search(page, "a rocket launch")
    expect(page.locator("#results .card .name").first).to_have_text("launch.webp")
    page.locator("#q").press("ArrowDown")  # into the grid
    expect(page.locator("#results .card").first).to_be_focused()
    page.keyboard.press("m")
    expect(page.locator("#example-name")).to_have_text("More like launch.webp")
    expect(page.locator("#q")).to_have_value("")
    expect(page.locator("#results .card .name").first).to_have_text("launch.webp")
    assert "bread.md" not in first_names(page, 3)  # image-to-image: a note does not look alike
    page.locator("#example-clear").click()
    expect(page.locator("#results .card")).to_have_count(0)


@pytest.mark.models
def test_an_uploaded_photo_finds_its_likeness(page, tmp_path: Path) -> None:
    from skimage import data as skimage_data

    probe = tmp_path / "my mug.jpg"  # a smaller, cropped copy of the coffee photo
    Image.fromarray(skimage_data.coffee()).crop((40, 20, 560, 380)).resize((260, 180)).save(probe)
    page.locator("#pick").set_input_files(str(probe))
    expect(page.locator("#example-name")).to_have_text("Like my mug.jpg")
    expect(page.locator("#results .card .name").first).to_have_text("coffee.png")


@pytest.mark.models
def test_a_dropped_photo_is_searched_too(page, tmp_path: Path) -> None:
    import base64

    from skimage import data as skimage_data

    probe = tmp_path / "kitty.jpg"  # a smaller copy of the cat photo, dropped from the desktop
    Image.fromarray(skimage_data.chelsea()).resize((225, 150)).save(probe)
    page.evaluate(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], 'kitty.jpg', {type: 'image/jpeg'}));
            document.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));
        }""",
        base64.b64encode(probe.read_bytes()).decode(),
    )
    expect(page.locator("#example-name")).to_have_text("Like kitty.jpg")
    expect(page.locator("#results .card .name").first).to_have_text("cat.jpg")


@pytest.mark.models
def test_filters_kind_date_and_min_score(page) -> None:
    cards = page.locator("#results .card")
    search(page, "a cat")
    expect(cards.first.locator(".name")).to_have_text("cat.jpg")
    page.locator("#kind").select_option("text")
    expect(page.locator("#results .card.kind-image")).to_have_count(0)
    page.locator("#kind").select_option("image")
    expect(cards.first.locator(".name")).to_have_text("cat.jpg")
    page.locator("#after").fill("2100-01-01")  # the photos were written today
    expect(cards).to_have_count(0)
    expect(page.locator("#status")).to_contain_text("0 results")
    page.locator("#after").fill("")
    page.locator("#before").fill("2100-01-01")
    expect(cards.first.locator(".name")).to_have_text("cat.jpg")
    page.locator("#min").fill("1")  # the cat scores 0.9999 on the calibrated scale
    page.locator("#min").dispatch_event("change")
    expect(cards).to_have_count(0)


@pytest.mark.models
def test_a_query_mistake_shows_the_caret(page) -> None:
    search(page, "cat kind:imgae")
    error = page.locator("#error")
    expect(error).to_be_visible()
    lines = error.inner_text().splitlines()
    query_line = next(line for line in lines if "kind:imgae" in line)
    caret_line = lines[lines.index(query_line) + 1]
    assert caret_line.strip() == "^"
    assert query_line[caret_line.index("^"):].startswith("imgae")  # the caret is under the mistake
    expect(page.locator("#results .card")).to_have_count(0)


@pytest.mark.models
def test_a_phone_sized_screen(browser, server: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    page = context.new_page()
    page.goto(server)
    search(page, "a cat")
    expect(page.locator("#results .card .name").first).to_have_text("cat.jpg")
    columns = page.eval_on_selector("#results", "e => getComputedStyle(e).gridTemplateColumns")
    assert len(columns.split()) == 2  # two thumbnails a row
    assert page.locator("#results .card").first.bounding_box()["width"] > 150
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    context.close()


def test_a_token_protected_server(browser, tmp_path: Path) -> None:
    index, _ = indexed_folder(tmp_path)
    with running_server(index, token="s3cret-token") as base:
        # the page itself is served without the token, with a strict policy; the API still asks
        answer = httpx.get(base)
        assert answer.status_code == 200
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert httpx.get(f"{base}/status").status_code == 401
        assert httpx.get(f"{base}/web/../status").status_code in (401, 404)
        context = browser.new_context()
        page = context.new_page()
        page.goto(base)
        login = page.locator("#login")
        expect(login).to_be_visible()
        page.locator("#token").fill("wrong")
        page.locator("#token").press("Enter")
        expect(page.locator("#login-error")).to_contain_text("refused")
        page.locator("#token").fill("s3cret-token")
        page.locator("#token").press("Enter")
        expect(login).to_be_hidden()
        search(page, "red")
        expect(page.locator("#results .card .name").first).to_have_text("red.png")
        # thumbnails come through the API with the token (as blob: URLs)
        loaded(page, "#results img")
        assert page.locator("#results img").first.get_attribute("src").startswith("blob:")
        assert page.evaluate("sessionStorage.getItem('mmsearch-token')") == "s3cret-token"
        assert page.evaluate("localStorage.length") == 0
        page.reload()  # the same tab keeps it
        search(page, "blue")
        expect(page.locator("#results .card .name").first).to_have_text("blue.png")
        expect(login).to_be_hidden()
        fresh = context.new_page()  # another tab asks again
        fresh.goto(base)
        expect(fresh.locator("#login")).to_be_visible()
        context.close()
