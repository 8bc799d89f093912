"""The TUI with the real offline model: the same flows a user runs, on real photos and notes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from skimage import data as skimage_data
from tui_helpers import SIZE, row_names, search, settle, table_names

from mmsearch import Library
from mmsearch.config import Settings
from mmsearch.tui import make_app

pytestmark = [pytest.mark.models, pytest.mark.asyncio]


@pytest.fixture(scope="module")
def offline_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tui-offline")
    media = root / "media"
    media.mkdir()
    for name, file in {"chelsea": "cat.jpg", "coffee": "coffee.png", "rocket": "launch.webp"}.items():
        Image.fromarray(getattr(skimage_data, name)()).save(media / file)
    (media / "bread.md").write_text(
        "Sourdough: mix flour, water and salt with the starter, let the dough rise, bake the loaf."
    )
    with Library.open(root / "index", model="offline-default") as lib:
        assert lib.index([media]).added == 4
    return root / "index"


async def test_text_search_and_more_like_this_with_the_offline_model(offline_index: Path) -> None:
    app = make_app(offline_index, settings=Settings())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "offline-default" in str(app.status.render())
        await search(pilot, "how do I bake bread")
        assert table_names(app)[0] == "bread.md"
        await search(pilot, "a cat")
        assert table_names(app)[0] == "cat.jpg"
        app.query_one("#results").focus()
        await pilot.press("m")  # more like this photo
        await settle(pilot)
        assert app.query_one("#search").value.endswith("cat.jpg")
        assert row_names(app)[0] == "cat.jpg"
