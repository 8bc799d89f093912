"""The terminal UI driven through Textual's Pilot, with the fast deterministic model."""

from __future__ import annotations

import fcntl
import re
import threading
from pathlib import Path

import pytest
from tui_helpers import build_index, rendered, row_names, running, search, settle, table_names

from mmsearch.tui import system
from mmsearch.tui.screens import AddFolderScreen, HelpScreen, ProblemScreen

pytestmark = pytest.mark.asyncio


@pytest.fixture
def index(tmp_path: Path) -> Path:
    return build_index(tmp_path)


async def test_typing_searches_as_you_type_and_the_status_line_says_what_happened(index: Path) -> None:
    async with running(index) as (app, pilot):
        assert "Ready: 8 items" in rendered(app.status)
        await pilot.press(*"bread")
        await settle(pilot)
        assert table_names(app)[0] == "bread.md"
        status = rendered(app.status)
        assert "match" in status and " ms" in status and "hash-test" in status and "index" in status
        await search(pilot, "plant tomatoes")
        assert table_names(app) == ["garden.txt"]
        assert "1 match ·" in rendered(app.status)


async def test_a_slow_older_search_never_replaces_a_newer_result(index: Path) -> None:
    async with running(index) as (app, pilot):
        release = threading.Event()
        real_search = app.library.search

        def search_slowly(text=None, **kwargs):
            if text == "plant tomatoes":
                release.wait(5)  # the first query is slow to answer
            return real_search(text, **kwargs)

        app.library.search = search_slowly
        await pilot.press(*"plant tomatoes")
        await pilot.pause(0.2)  # "garden" is now being searched, slowly
        app.query_one("#search").value = "bread"
        await pilot.pause(0.2)
        release.set()
        await settle(pilot)
        assert table_names(app)[0] == "bread.md"
        assert app.query_one("#search").value == "bread"


async def test_rows_show_score_bar_kind_folder_and_sound_time_range(index: Path) -> None:
    async with running(index) as (app, pilot):
        await search(pilot, "high")
        rows = app.query_one("#results")
        whistle = rows.row_text(table_names(app).index("whistle.wav"))
        assert "█" in whistle and re.search(r"\d\.\d{3}", whistle)
        assert "♪ whistle.wav" in whistle and "/sounds" in whistle
        assert re.search(r"00:0\d-00:0\d", whistle)


async def test_the_preview_shows_what_the_selected_hit_is(index: Path) -> None:
    async with running(index) as (app, pilot):
        await search(pilot, "flour dough")
        preview = app.query_one("#preview")
        body = app.query_one("#preview-body").render()
        assert "Knead the dough" in str(body)
        highlighted = {str(body)[s.start : s.end].lower() for s in body.spans if "yellow" in str(s.style)}
        assert {"flour", "dough"} <= highlighted
        await search(pilot, "blue")
        assert table_names(app)[0].startswith("blue")
        title = rendered(app.query_one("#preview-title"))
        assert "64×48" in title
        assert len(preview.query(".preview-image")) == 1  # the picture itself is drawn
        await search(pilot, "high")
        table = app.query_one("#results")
        table.focus()
        row = row_names(app).index("whistle.wav")
        table.highlighted = row
        await settle(pilot)
        body = str(app.query_one("#preview-body").render())
        assert "00:02" in body and "match at" in body
        assert any(ch in body for ch in "▁▂▃▄▅▆▇█")  # the waveform
        assert "tags:" in body
        assert len(preview.query(".preview-image")) == 0


async def test_more_like_this_and_a_pasted_example_search_by_that_file(index: Path, tmp_path: Path) -> None:
    async with running(index) as (app, pilot):
        await search(pilot, "blue")
        table = app.query_one("#results")
        table.focus()
        table.highlighted = row_names(app).index("blue.jpg")
        await pilot.press("m")
        await settle(pilot)
        assert app.query_one("#search").value.endswith("blue.jpg")
        assert row_names(app)[:2] == ["blue.jpg", "blue-copy.jpg"]
        # A path dropped on the terminal arrives as a paste, quoted when it holds blanks.
        spaced = tmp_path / "my sounds" / "hum copy.wav"
        spaced.parent.mkdir()
        spaced.write_bytes((tmp_path / "media" / "sounds" / "hum.wav").read_bytes())
        box = app.query_one("#search")
        box.value = ""
        box.focus()
        from textual import events

        box.post_message(events.Paste(f"'{spaced}'"))
        await settle(pilot)
        assert row_names(app)[0] == "hum.wav"
        # Text and an example together, with a negative: the same syntax as the CLI.
        box.value = f"'{spaced}' high -bread"
        await settle(pilot)
        assert "hum.wav" in row_names(app) and "bread.md" not in row_names(app)[:1]


async def test_more_like_this_on_a_document_says_what_works(index: Path) -> None:
    async with running(index) as (app, pilot):
        await search(pilot, "bread")
        app.query_one("#results").focus()
        await pilot.press("m")
        await pilot.pause()
        assert any("images, sounds and videos" in n.message for n in app._notifications)
        assert app.query_one("#search").value == "bread"


async def test_filter_keys_restrict_kind_extension_folder_and_min_score(index: Path, tmp_path: Path) -> None:
    async with running(index) as (app, pilot):
        await search(pilot, "blue")
        assert row_names(app) == ["blue.jpg", "blue-copy.jpg"]  # the model's cut-off
        app.query_one("#results").focus()
        await pilot.press(*["minus"] * 7)  # from the model's cut-off 0.30 down to -0.05
        await settle(pilot)
        assert "min:-0.05" in rendered(app.status)
        assert {h.kind for h in app.hits} == {"image", "text", "audio"}
        await pilot.press("1")
        await settle(pilot)
        assert {h.kind for h in app.hits} == {"image"}
        assert "kind:image" in rendered(app.status)
        await pilot.press("1", "3")
        await settle(pilot)
        assert row_names(app) == ["hum.wav"]
        await pilot.press("3")
        app.query_one("#filter-ext").value = "webp"
        await settle(pilot)
        assert row_names(app) == ["green.webp"]
        app.query_one("#filter-ext").value = ""
        app.query_one("#filter-folder").value = str(tmp_path / "media" / "notes")
        await settle(pilot)
        assert set(row_names(app)) == {"bread.md", "garden.txt"}
        app.query_one("#filter-folder").value = ""
        app.query_one("#results").focus()
        await pilot.press(*["plus"] * 6)  # back up to 0.25
        await settle(pilot)
        assert "min:0.25" in rendered(app.status)
        assert row_names(app) == ["blue.jpg", "blue-copy.jpg"]
        await pilot.press("minus", "0")  # 0 clears every filter
        await settle(pilot)
        assert row_names(app) == ["blue.jpg", "blue-copy.jpg"]
        assert "min:" not in rendered(app.status)


async def test_open_reveal_copy_and_play_start_the_right_programs(
    index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(system, "launch", lambda command: started.append(list(command)) or _Done())
    monkeypatch.setattr(system.shutil, "which", lambda name: f"/usr/bin/{name}")
    async with running(index) as (app, pilot):
        await search(pilot, "high")
        app.query_one("#results").focus()
        app.query_one("#results").highlighted = row_names(app).index("whistle.wav")
        await settle(pilot)
        hit = app.selected
        await pilot.press("o", "r", "p", "c")
        assert started[0] == ["/usr/bin/xdg-open", hit.path]
        assert started[1] == ["/usr/bin/xdg-open", str(Path(hit.path).parent)]
        assert started[2][0] == "/usr/bin/ffplay" and started[2][-1] == hit.path
        assert app.clipboard == hit.path


async def test_with_no_sound_player_installed_play_says_what_to_install(
    index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(system.shutil, "which", lambda name: None)
    async with running(index) as (app, pilot):
        await search(pilot, "high")
        app.query_one("#results").focus()
        app.query_one("#results").highlighted = row_names(app).index("whistle.wav")
        await pilot.press("p")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("No sound player is installed" in m and "ffmpeg" in m for m in messages)


class _Done:
    def poll(self) -> int:
        return 0


async def test_indexing_a_folder_from_the_ui_makes_it_searchable(index: Path, tmp_path: Path) -> None:
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "recipes.md").write_text("Pancakes: eggs, milk, flour; fry them in butter.\n")
    (extra / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    async with running(index) as (app, pilot):
        await search(pilot, "pancakes")
        assert "recipes.md" not in row_names(app)
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, AddFolderScreen)
        await pilot.press(*str(tmp_path / "mo"))
        await pilot.pause(0.1)
        await pilot.press("tab")  # completes "more/"
        assert app.screen.query_one("Input").value == str(extra) + "/"
        await pilot.press("enter")
        await settle(pilot, indexing=True)
        panel_text = rendered(app.query_one("#index-line"))
        assert "1 added" in panel_text and "1 skipped" in panel_text
        skipped = rendered(app.query_one("#index-skipped"))
        assert "broken.jpg" in skipped and "jpeg" in skipped.lower()
        assert row_names(app)[0] == "recipes.md"  # the results on screen were refreshed


async def test_cancelling_indexing_keeps_searching_working_and_stops_cleanly(
    index: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "more"
    for i in range(6):
        (extra / f"note{i}.md").parent.mkdir(exist_ok=True)
        (extra / f"note{i}.md").write_text(f"Note number {i} about pancakes.\n")
    async with running(index, batch_size=1) as (app, pilot):
        real_index = app.library.index
        cancelled = threading.Event()

        def index_until_cancelled(folders, progress=None, cancel=None, **kwargs):
            def hold(p):
                progress(p)
                if p.phase == "encode":
                    cancel.wait(10)  # a long run: held until the user cancels
                    cancelled.set()
            return real_index(folders, progress=hold, cancel=cancel, **kwargs)

        app.library.index = index_until_cancelled
        app.start_index(str(extra))
        await pilot.pause(0.3)
        assert app.query_one("#indexing").display
        await search(pilot, "bread")  # searching goes on meanwhile
        assert row_names(app)[0] == "bread.md"
        app.query_one("#results").focus()
        await pilot.press("x")
        await settle(pilot, indexing=True)
        assert cancelled.is_set()
        assert "Cancelled" in rendered(app.query_one("#index-line"))
        assert not app.query_one("#index-cancel").display
        await search(pilot, "pancakes")  # what was committed before the cancel is searchable
        assert len([n for n in row_names(app) if n.startswith("note")]) < 6


async def test_help_lists_every_binding(index: Path) -> None:
    async with running(index) as (app, pilot):
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = " ".join(
            " ".join(f"{keys} {what}" for keys, what in rows) for _, rows in app.screen.sections
        )
        for binding in app.BINDINGS:
            for key in binding.key.split(","):
                shown = {"question_mark": "?", "plus": "+", "minus": "-", "equals_sign": "+"}.get(key, key)
                assert shown in text.split(), f"{key} ({binding.action}) is not in the help"
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_a_missing_index_offers_to_create_one(tmp_path: Path) -> None:
    async with running(tmp_path / "nowhere") as (app, pilot):
        assert isinstance(app.screen, ProblemScreen)
        assert "No index at" in rendered(app.screen.query_one("#problem-message"))
        await pilot.click("#create")
        await settle(pilot)
        assert (tmp_path / "nowhere" / "catalog.db").is_file()
        assert isinstance(app.screen, AddFolderScreen)


async def test_a_damaged_index_gets_a_screen_saying_what_to_do(index: Path) -> None:
    (index / "catalog.db").write_bytes(b"")
    async with running(index) as (app, pilot):
        assert isinstance(app.screen, ProblemScreen)
        message = rendered(app.screen.query_one("#problem-message"))
        assert "empty" in message and "backup" in message
        await pilot.press("enter")
        await pilot.pause()
    assert app.return_code == 0


async def test_a_busy_index_and_an_unreadable_example_are_notified_not_raised(
    index: Path, tmp_path: Path
) -> None:
    async with running(index) as (app, pilot):
        with open(index / "write.lock", "w") as lock:  # noqa: ASYNC230 - a lock file, instant
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process is indexing
            app.start_index(str(tmp_path / "media"))
            await settle(pilot, indexing=True)
        messages = [n.message for n in app._notifications]
        assert any("Another mmsearch process is writing" in m for m in messages)
        fake = tmp_path / "fake.png"
        fake.write_bytes(b"not a png at all")
        await search(pilot, str(fake))
        assert "fake.png" in rendered(app.status)
        assert app.return_code is None  # still running


async def test_a_query_syntax_mistake_is_shown_in_the_status_line(index: Path) -> None:
    async with running(index) as (app, pilot):
        await search(pilot, 'red 200:"car"')
        assert "weight" in rendered(app.status).lower()


async def test_a_file_gone_or_damaged_since_indexing_is_explained_in_the_preview(
    index: Path, tmp_path: Path
) -> None:
    (tmp_path / "media" / "photos" / "blue.jpg").write_bytes(b"\xff\xd8\xff\xe0 damaged now")
    (tmp_path / "media" / "photos" / "blue-copy.jpg").unlink()
    async with running(index) as (app, pilot):
        await search(pilot, "blue")
        rows = app.query_one("#results")
        rows.highlighted = row_names(app).index("blue.jpg")
        await settle(pilot)
        body = rendered(app.query_one("#preview-body"))
        assert "blue.jpg" in body and ("corrupt" in body or "truncated" in body)
        assert not app.query_one("#preview").query(".preview-image")
        rows.highlighted = row_names(app).index("blue-copy.jpg")
        await settle(pilot)
        assert "The file is gone" in rendered(app.query_one("#preview-body"))


async def test_the_mouse_selects_a_row_and_presses_buttons(index: Path) -> None:
    async with running(index) as (app, pilot):
        await search(pilot, "blue")
        first = app.selected
        await pilot.click("#results", offset=(10, 2))  # the second row (inside the border)
        await settle(pilot)
        assert app.selected is not None and app.selected != first
        assert Path(app.selected.path).name in rendered(app.query_one("#preview-title"))
        chosen = app.selected.path
        app.query_one("#results").focus()
        await pilot.press("1")  # a filter that keeps the selected file keeps it selected
        await settle(pilot)
        assert app.selected.path == chosen
        await pilot.press("f1")
        await pilot.pause()
        app.screen.query_one("#help-close").scroll_visible(animate=False)
        await pilot.pause()
        await pilot.click("#help-close")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_an_index_whose_vectors_do_not_fit_the_model_gets_a_screen(index: Path) -> None:
    import json
    import sqlite3

    with sqlite3.connect(index / "catalog.db") as db:  # as if the model's weights were swapped
        (raw,) = db.execute("SELECT value FROM meta WHERE key = 'spaces'").fetchone()
        dims = {space: dim + 1 for space, dim in json.loads(raw).items()}
        db.execute("UPDATE meta SET value = ? WHERE key = 'spaces'", [json.dumps(dims)])
    async with running(index) as (app, _pilot):
        assert isinstance(app.screen, ProblemScreen)
        assert "another model" in app.screen.title_text
        message = rendered(app.screen.query_one("#problem-message"))
        assert "dimensions" in message and "new folder" in message


async def test_a_bad_setting_gets_a_screen_naming_it(index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmsearch.tui import make_app

    monkeypatch.setenv("MMSEARCH_BATCH_SIZE", "0")
    app = make_app(index)  # as `mmsearch tui` does: settings are read in the start-up worker
    async with app.run_test(size=(120, 34)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ProblemScreen)
        assert "setting" in app.screen.title_text
        assert "MMSEARCH_BATCH_SIZE" in rendered(app.screen.query_one("#problem-message"))
