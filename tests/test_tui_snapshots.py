"""Snapshots of the TUI's main screens (pytest-textual-snapshot): what a user sees, pixel for cell.

Run `pytest tests/test_tui_snapshots.py --snapshot-update` after a deliberate change of the look,
and look at the report's pictures before committing the new SVGs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from tui_helpers import SIZE, app_for, build_index, search, settle

from mmsearch.tui import widgets


@pytest.fixture
def stable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Paths drawn as ~/... and a fixed search time, so the pictures do not change run to run."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(widgets, "format_elapsed", lambda seconds: "3 ms")
    return build_index(tmp_path)


def searched(query: str, *keys: str) -> Callable[[Pilot], Awaitable[None]]:
    """Before the picture: search for `query`, then press `keys`."""

    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        await search(pilot, query)
        await pilot.press(*keys)
        await settle(pilot)

    return run_before


def test_results_with_an_image_preview(snap_compare, stable: Path) -> None:
    # "down": focus goes to the results (and no blinking cursor is in the picture)
    assert snap_compare(app_for(stable), terminal_size=SIZE, run_before=searched("blue", "down"))


def test_a_sound_with_its_waveform_and_tags(snap_compare, stable: Path) -> None:
    assert snap_compare(app_for(stable), terminal_size=SIZE, run_before=searched("high", "down"))


def test_the_filter_panel(snap_compare, stable: Path) -> None:
    keys = ("down", "minus", "minus", "minus", "minus", "1")
    assert snap_compare(app_for(stable), terminal_size=SIZE, run_before=searched("blue", *keys))


def test_the_help_screen(snap_compare, stable: Path) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(app_for(stable), terminal_size=(120, 50), run_before=run_before)


def test_the_add_folder_dialog(snap_compare, stable: Path) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("ctrl+n", *"~/me")
        pilot.app.screen.query_one("Input").cursor_blink = False  # one picture, not two
        await settle(pilot)

    assert snap_compare(app_for(stable), terminal_size=SIZE, run_before=run_before)


def test_a_missing_index_screen(snap_compare, stable: Path) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)

    assert snap_compare(app_for(stable.parent / "nowhere"), terminal_size=SIZE, run_before=run_before)
