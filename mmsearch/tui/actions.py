"""What the keys do to the selected result (preview, open, reveal, copy, play, more like this)
and to the filter panel: `ResultActions`, a part of `MmsearchApp`."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from textual import work
from textual.widgets import Input, OptionList
from textual.worker import get_current_worker

from mmsearch.media.kinds import AUDIO, IMAGE, VIDEO
from mmsearch.present import short_path
from mmsearch.results import Hit
from mmsearch.tui import system
from mmsearch.tui.preview import Preview, load_details
from mmsearch.tui.request import Request, quote_path
from mmsearch.tui.widgets import FilterPanel, ResultList


class ResultActions:
    """The selected result and the filters (mixed into `MmsearchApp`, whose state it shares)."""

    hits: list[Hit]
    library: Any | None
    last_command: list[str]
    _request: Request | None
    _player: subprocess.Popen[bytes] | None

    # -- the selected hit ---------------------------------------------------------------------

    @property
    def selected(self) -> Hit | None:
        index = self.query_one("#results", ResultList).highlighted
        if not self.hits or index is None:
            return None
        return self.hits[min(index, len(self.hits) - 1)]

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        hit = self.selected
        if hit is not None:
            self._preview(hit)

    def _preview(self, hit: Hit) -> None:
        text = self._request.text if self._request else None
        self._load_preview(hit, text)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def _load_preview(self, hit: Hit, text: str | None) -> None:
        details = load_details(self.library, hit, text)
        if not get_current_worker().is_cancelled:
            self._from_worker(self._show_preview, details, text)

    def _show_preview(self, details: Any, text: str | None) -> None:
        if details.hit == self.selected:
            self.query_one("#preview", Preview).show(details, text)

    def _need_selection(self) -> Hit | None:
        hit = self.selected
        if hit is None:
            self.notify("Nothing selected: search first.", severity="warning")
        return hit

    def action_more_like_this(self) -> None:
        hit = self._need_selection()
        if hit is None:
            return
        if hit.kind not in (IMAGE, AUDIO, VIDEO):
            self.notify(
                "More like this works for images, sounds and videos; for a document, search its words.",
                severity="warning",
            )
            return
        box = self.query_one("#search", Input)
        box.value = quote_path(hit.path)
        box.cursor_position = len(box.value)
        box.focus()

    def _start(self, command_for: Any, *args: Any) -> subprocess.Popen[bytes] | None:
        try:
            command = command_for(*args)
            process = system.launch(command)
        except (system.ToolMissing, OSError) as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return None
        self.last_command = command
        return process

    def action_open(self) -> None:
        hit = self._need_selection()
        if hit is None:
            return
        if hit.kind == VIDEO and hit.start:  # at the moment that matched, where a player can
            command = self._start(system.video_command, hit.path, hit.start)
        else:
            command = self._start(system.open_command, hit.path)
        if command:
            self.notify(f"Opening {os.path.basename(hit.path)}")

    def action_reveal(self) -> None:
        hit = self._need_selection()
        if hit is not None and self._start(system.reveal_command, hit.path):
            self.notify(f"Showing {short_path(os.path.dirname(hit.path))}")

    def action_copy_path(self) -> None:
        hit = self._need_selection()
        if hit is not None:
            self.copy_to_clipboard(hit.path)
            self.notify(f"Copied {short_path(hit.path)}")

    def action_play(self) -> None:
        if self._player is not None and self._player.poll() is None:
            self._player.terminate()
            self._player = None
            self.notify("Stopped.")
            return
        hit = self._need_selection()
        if hit is None:
            return
        if hit.kind not in (AUDIO, VIDEO):
            self.notify("Only sounds and videos can be played; o opens the file.", severity="warning")
            return
        player = system.video_command if hit.kind == VIDEO else system.play_command
        self._player = self._start(player, hit.path, hit.start)
        if self._player is not None:
            self.notify(f"Playing {os.path.basename(hit.path)} (p stops)")

    # -- filters ------------------------------------------------------------------------------

    def action_toggle_filters(self) -> None:
        panel = self.query_one("#filters", FilterPanel)
        panel.display = not panel.display
        if panel.display:
            panel.query_one("#kind-image").focus()
        else:
            self.query_one("#results", ResultList).focus()

    def action_toggle_kind(self, kind: str) -> None:
        panel = self.query_one("#filters", FilterPanel)
        panel.display = True
        panel.toggle_kind(kind)

    def action_min_score(self, step: float) -> None:
        panel = self.query_one("#filters", FilterPanel)
        panel.display = True
        panel.nudge_min_score(step)

    def action_clear_filters(self) -> None:
        self.query_one("#filters", FilterPanel).clear()

    # -- focus --------------------------------------------------------------------------------

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def on_key(self, event: Any) -> None:
        if self.focused is self.query_one("#search", Input) and event.key in ("down", "escape"):
            self.query_one("#results", ResultList).focus()
            event.stop()
