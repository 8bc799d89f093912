"""Live folders in the terminal UI: F6 follows the folders; results on screen refresh as files land."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("textual")
from tui_helpers import build_index, rendered, running, search, table_names

pytestmark = pytest.mark.asyncio
WAIT = 20.0


async def test_f6_follows_the_folders_and_the_results_on_screen_refresh(tmp_path: Path) -> None:
    index = build_index(tmp_path)
    media = tmp_path / "media"
    async with running(index, watch_settle_seconds=0.3, watch_rescan_minutes=0) as (app, pilot):
        await search(pilot, "kayak fjord")
        assert "kayak.md" not in table_names(app)
        await pilot.press("f6")
        assert app.status.live and "Following the indexed folders" in rendered(app.status)
        await pilot.pause(1.5)  # the catch-up rescan, then the event source is up
        (media / "notes" / "kayak.md").write_text("Paddle the kayak across the fjord at dawn.\n")
        deadline = time.monotonic() + WAIT
        while not (app.hits and table_names(app)[0] == "kayak.md"):
            assert time.monotonic() < deadline, f"the results never refreshed: {table_names(app)}"
            await pilot.pause(0.2)
        assert "live" in rendered(app.status)  # the status line says the folders are followed
        await pilot.press("f6")
        assert not app.status.live and "Stopped following" in rendered(app.status)
        watchers = [w for w in app.workers if w.group == "watch"]
        deadline = time.monotonic() + WAIT
        while any(w.is_running for w in watchers):
            assert time.monotonic() < deadline, "the watcher did not stop"
            await pilot.pause(0.1)
