"""`MmsearchApp`: the search screen and its key bindings, workers and error handling.

Everything slow runs in thread workers: opening the index and loading the model (after the first
frame), each search (a newer one cancels the older; a stale result never replaces a newer one),
the preview's file reading, and indexing (one `Library` serves the indexing thread and the
searches, which see each committed batch).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, OptionList
from textual.worker import get_current_worker

from mmsearch.errors import (
    IndexCancelled,
    IndexNotFoundError,
    MmsearchError,
)
from mmsearch.media.kinds import AUDIO, IMAGE, VIDEO
from mmsearch.present import short_path, tilde
from mmsearch.results import Hit
from mmsearch.tui import system
from mmsearch.tui.preview import Preview, load_details
from mmsearch.tui.request import Filters, Request, parse_box, quote_path
from mmsearch.tui.screens import AddFolderScreen, HelpScreen, ProblemScreen
from mmsearch.tui.widgets import FilterPanel, IndexPanel, ResultList, StatusLine

DEBOUNCE = 0.0
"""Seconds of quiet after a keystroke before searching. None by default: searches never queue
up anyway (one runs at a time; keys typed meanwhile are searched together when it ends)."""
RESULTS = 50
REFRESH_WHILE_INDEXING = 2.0
"""Seconds between searches again for the query on screen while an indexing run commits."""

HELP_SECTIONS: list[tuple[str, list[tuple[str, str]]]] = [
    ("Searching", [
        ("type", "search as you type: text, weights 2:\"red car\", negatives -night"),
        ("paste / drop", "an image or sound file path: search by that example (mix with text)"),
        ("ctrl+l  m", "more like this: search by the selected image or sound"),
        ("↓  enter  esc", "from the search box to the results"),
        ("/", "back to the search box"),
        ("ctrl+u", "clear the search box"),
    ]),
    ("The selected result", [
        ("↑ ↓  pgup pgdn", "move through the results (the preview follows)"),
        ("ctrl+o  o", "open with the system's default application"),
        ("r", "reveal: open its folder"),
        ("c", "copy its path"),
        ("p", "play a sound (again: stop)"),
    ]),
    ("Filters", [
        ("ctrl+f  f", "show or hide the filter panel"),
        ("1  2  3  4", "only images / text / sounds / videos (toggle)"),
        ("+  -", "raise / lower the minimum score"),
        ("0", "clear all filters"),
    ]),
    ("Index", [
        ("ctrl+n  i", "index a folder (Tab completes the path)"),
        ("x", "cancel indexing (what was committed stays searchable)"),
        ("f6  w", "follow the folders: files are indexed as they land (live)"),
    ]),
    ("App", [
        ("f1  ?", "this help"),
        ("ctrl+q  q", "quit"),
    ]),
]

_FATAL_TITLES = {
    "ModelMismatchError": "Index built with another model",
    "IndexDamagedError": "The index is damaged",
    "IndexFormatError": "The index cannot be read",
    "ModelUnavailableError": "The model is not installed",
    "UnknownModelError": "Unknown model",
    "ConfigError": "A setting is wrong",
    "ReadOnlyIndexError": "The index is read-only",
}


class MmsearchApp(App[None]):
    """Search a collection interactively by text, example image or example sound."""

    CSS_PATH = "mmsearch.tcss"
    TITLE = "mmsearch"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+l", "more_like_this", "More like this"),
        Binding("ctrl+o", "open", "Open"),
        Binding("ctrl+f", "toggle_filters", "Filters"),
        Binding("ctrl+n", "add_folder", "Index folder"),
        Binding("f1", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("question_mark", "help", "Help", show=False),
        Binding("q", "quit", "Quit", show=False),
        Binding("m", "more_like_this", "More like this", show=False),
        Binding("o", "open", "Open", show=False),
        Binding("r", "reveal", "Reveal", show=False),
        Binding("c", "copy_path", "Copy path", show=False),
        Binding("p", "play", "Play", show=False),
        Binding("f", "toggle_filters", "Filters", show=False),
        Binding("i", "add_folder", "Index folder", show=False),
        Binding("x", "cancel_index", "Cancel indexing", show=False),
        Binding("f6,w", "toggle_watch", "Follow folders", show=False),
        Binding("1", "toggle_kind('image')", "Images", show=False),
        Binding("2", "toggle_kind('text')", "Text", show=False),
        Binding("3", "toggle_kind('audio')", "Sounds", show=False),
        Binding("4", "toggle_kind('video')", "Videos", show=False),
        Binding("plus,equals_sign", "min_score(0.05)", "Raise min score", show=False),
        Binding("minus", "min_score(-0.05)", "Lower min score", show=False),
        Binding("0", "clear_filters", "Clear filters", show=False),
    ]

    def __init__(
        self,
        index: str | os.PathLike[str] | None = None,
        settings: Any | None = None,
        debounce: float | None = None,
    ) -> None:
        super().__init__()
        self.index_arg = index
        self.settings = settings
        self.debounce = DEBOUNCE if debounce is None else debounce
        self.library: Any | None = None
        self.hits: list[Hit] = []
        self.filters = Filters()
        self.requested = 0
        """Generation of the newest search asked for."""
        self.shown = 0
        """Generation of the results on screen (a smaller one never replaces them)."""
        self.first_frame_at = 0.0
        """time.time() when the first frame was drawn (read by scripts/bench_tui.py)."""
        self.drawn_at = 0.0
        """perf_counter() when the last results were drawn (read by scripts/bench_tui.py)."""
        self.last_command: list[str] = []
        """The last program started for open / reveal / play (shown in tests)."""
        self._timer: Timer | None = None
        self._searching = False
        self._search_again = False
        self._shown_question: tuple[Any, ...] = ()
        self._request: Request | None = None
        self._cancel_index: threading.Event | None = None
        self._player: subprocess.Popen[bytes] | None = None
        self._watch_stop: threading.Event | None = None

    # -- layout and start-up ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(icon="⌕")
        yield Input(
            placeholder="Search: words, 2:\"weighted terms\", -not, or drop an image/sound file here",
            id="search",
        )
        with Horizontal(id="main"):
            yield ResultList(id="results")
            yield Preview(id="preview")
        filters = FilterPanel(id="filters")
        filters.border_title = "Filters (ctrl+f hides)"
        yield filters
        indexing = IndexPanel(id="indexing")
        indexing.border_title = "Indexing"
        yield indexing
        yield StatusLine("Opening the index…", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#search", Input).focus()
        # After the first frame: the engine's imports (faiss, the model) come later.
        self.call_after_refresh(self._first_frame)

    def _first_frame(self) -> None:
        self.first_frame_at = time.time()
        self._open_library(False)

    @property
    def status(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    def _from_worker(self, callback: Any, *args: Any) -> None:
        """Hand a result to the UI thread; quietly nothing when the app has quit meanwhile."""
        try:
            self.call_from_thread(callback, *args)
        except RuntimeError:
            pass

    @work(thread=True, exit_on_error=False, group="open")
    def _open_library(self, create: bool) -> None:
        try:
            from mmsearch.config import load_settings
            from mmsearch.library import Library

            if self.settings is None:
                index = os.fspath(self.index_arg) if self.index_arg is not None else None
                self.settings = load_settings(from_cli=True, index=index)
            path = self.index_arg if self.index_arg is not None else self.settings.index_path()
            library = Library.open(path, create=create, settings=self.settings)
            self._from_worker(self.status.say, f"Loading model {library.spec.name}…", "italic")
            library.encoder().warm()  # open the networks now, not on the first keystroke's search
            stats = library.stats()
        except MmsearchError as exc:
            self._from_worker(self._open_failed, exc)
            return
        except Exception as exc:  # noqa: BLE001 - never a traceback: the UI says what broke: say what broke
            self._from_worker(self._open_failed, exc)
            return
        self._from_worker(self._library_ready, library, stats, create)

    def _library_ready(self, library: Any, stats: Any, created: bool) -> None:
        self.library = library
        count = sum(stats.items.values())
        self.sub_title = f"{short_path(str(library.path))} · {library.spec.name}"
        if created or count == 0:
            self.status.say(
                f"The index at {short_path(str(library.path))} is empty: press ctrl+n to index a folder.",
                "yellow",
            )
            if created:
                self.action_add_folder()
        else:
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(stats.items.items()))
            self.status.say(f"Ready: {count} items ({kinds}) · model {library.spec.name}. Type to search.")
        if self._request is not None or self.query_one("#search", Input).value:
            self._search_now()

    def _open_failed(self, exc: BaseException) -> None:
        name = type(exc).__name__
        if isinstance(exc, IndexNotFoundError):
            self.status.say(tilde(str(exc)), "red")

            def decided(choice: str | None) -> None:
                if choice == "create":
                    self.status.say("Creating the index…", "italic")
                    self._open_library(True)
                else:
                    self.exit()

            self.push_screen(
                ProblemScreen(
                    "No index yet",
                    f"{tilde(str(exc))}\n\nCreate an empty index there now and choose a folder to index?",
                    [("create", "Create it and index a folder"), ("quit", "Quit")],
                ),
                decided,
            )
            return
        title = _FATAL_TITLES.get(name, "The index could not be opened")
        message = tilde(str(exc)) if isinstance(exc, MmsearchError) else (
            f"internal error ({name}: {exc}); please report it."
        )
        self.status.say(message, "red")
        self.push_screen(ProblemScreen(title, message, [("quit", "Quit")]), lambda _: self.exit())

    # -- searching ----------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "search":
            return
        if self._timer is not None:
            self._timer.stop()
        if self.debounce > 0:
            self._timer = self.set_timer(self.debounce, self._search_now)
        else:
            self._search_now()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "search":
            if self._timer is not None:
                self._timer.stop()
            self._search_now()
            self.query_one("#results", ResultList).focus()

    def on_filter_panel_changed(self, event: FilterPanel.Changed) -> None:
        self.filters = event.filters
        self._search_now()

    def _search_now(self) -> None:
        """Search for what the box and the filters say now.

        At most one search runs at a time; what is typed meanwhile waits, and only its latest
        state is searched when the running one ends (a burst of keys costs one extra search, and
        a lone keystroke searches at once).
        """
        self._timer = None
        request = parse_box(self.query_one("#search", Input).value, self.filters, RESULTS)
        self.requested += 1
        self._request = request
        if self.library is None:
            return  # `_library_ready` searches once the index is open
        if request.empty:
            self.shown = self.requested
            self.hits = []
            self.query_one("#results", ResultList).show([])
            self.query_one("#preview", Preview).clear()
            self.status.say("Type to search; paste an image or sound file to search by example.")
            return
        if self._searching:
            self._search_again = True
            return
        self._searching = True
        self._search(self.requested, request)

    @work(thread=True, group="search", exit_on_error=False)
    def _search(self, generation: int, request: Request) -> None:
        started = time.perf_counter()
        hits: list[Hit] | None = None
        error: str | None = None
        try:
            hits = self.library.search(**request.search_args())  # type: ignore[union-attr]
        except MmsearchError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - never a traceback: the UI says what broke
            error = f"internal error ({type(exc).__name__}: {exc}); please report it."
        elapsed = time.perf_counter() - started
        self._from_worker(self._show_results, generation, request, hits, error, elapsed)

    def _show_results(
        self, generation: int, request: Request, hits: list[Hit] | None, error: str | None, elapsed: float
    ) -> None:
        self._searching = False
        if self._search_again:  # the box changed meanwhile: these results are stale already
            self._search_again = False
            self._search_now()
            return
        if generation <= self.shown or generation < self.requested:
            return  # never replace newer results (or the cleared list of an emptied box)
        if error is not None:
            self.status.say(error, "red")
            return
        assert hits is not None and self.library is not None
        self.shown = generation
        self.hits = hits
        self.query_one(FilterPanel).model_cutoff = getattr(hits, "cutoff", None)
        rows = self.query_one("#results", ResultList)
        asked = (request.text, request.images, request.audios)
        if asked != self._shown_question:
            rows.highlighted = None  # a new question (not just new filters): start at the top
        self._shown_question = asked
        rows.show(hits)
        self.status.results(
            len(hits), elapsed, self.library.spec.name, str(self.library.path), request.filters.describe()
        )
        if not hits:
            self.query_one("#preview", Preview).clear("No matches above the cut-off.")
        self.call_after_refresh(self._drawn)

    def _drawn(self) -> None:
        self.drawn_at = time.perf_counter()

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

    # -- indexing -----------------------------------------------------------------------------

    def action_add_folder(self) -> None:
        if self.library is None:
            self.notify("The index is not open yet.", severity="warning")
            return
        if self._cancel_index is not None:
            self.notify("Already indexing; x cancels that run.", severity="warning")
            return

        def chosen(folder: str | None) -> None:
            if folder:
                self.start_index(folder)

        self.push_screen(AddFolderScreen(), chosen)

    def start_index(self, folder: str) -> None:
        """Index `folder` in a worker; the panel shows progress; searching goes on meanwhile."""
        panel = self.query_one("#indexing", IndexPanel)
        panel.display = True
        panel.query_one("#index-cancel").display = True
        panel.progress(0, 1, f"Indexing {short_path(folder)}: scanning…")
        self._cancel_index = threading.Event()
        self._index(folder, self._cancel_index)

    def action_cancel_index(self) -> None:
        if self._cancel_index is None:
            self.notify("Nothing is being indexed.", severity="warning")
            return
        self._cancel_index.set()
        self.query_one("#indexing", IndexPanel).progress(
            0, 0, "Cancelling: committing what was encoded…"
        )

    def on_index_panel_cancel_pressed(self, event: IndexPanel.CancelPressed) -> None:
        self.action_cancel_index()

    @work(thread=True, exit_on_error=False, group="index")
    def _index(self, folder: str, cancel: threading.Event) -> None:
        started = time.perf_counter()
        phase = {"name": "", "since": started, "shown": 0.0, "searched": started}

        def progress(p: Any) -> None:
            now = time.perf_counter()
            if now - phase["searched"] > REFRESH_WHILE_INDEXING:
                phase["searched"] = now
                self._from_worker(self._refresh_results)
            if p.phase != phase["name"]:
                phase.update(name=p.phase, since=now)
            if now - phase["shown"] < 0.1 and p.done < p.total:
                return  # ten updates a second are plenty
            phase["shown"] = now
            rate = p.done / max(now - phase["since"], 1e-6)
            eta = (p.total - p.done) / rate if rate > 0 else 0.0
            name = os.path.basename(p.path) if p.path else ""
            line = f"{p.phase} {p.done}/{p.total} · {rate:.1f} files/s · ETA {eta:.0f} s  {name}"
            self._from_worker(self.query_one("#indexing", IndexPanel).progress, p.done, p.total, line)

        skipped: list[tuple[str, str]] = []
        try:
            report = self.library.index([folder], progress=progress, cancel=cancel)  # type: ignore[union-attr]
            skipped = list(report.failures)
            line = (
                f"Indexed {short_path(folder)} in {report.seconds:.1f} s: {report.added} added, "
                f"{report.updated} updated, {report.moved} moved, {report.removed} removed, "
                f"{report.unchanged} unchanged, {report.failed} skipped."
            )
            severity = "information"
        except IndexCancelled as exc:
            line, severity = f"Cancelled. {exc}", "warning"
        except MmsearchError as exc:
            line, severity = str(exc), "error"
        except Exception as exc:  # noqa: BLE001 - never a traceback: the UI says what broke
            line, severity = f"Indexing failed: internal error ({type(exc).__name__}: {exc}).", "error"
        self._from_worker(self._index_done, line, severity, skipped)

    # -- live folders -------------------------------------------------------------------------

    def action_toggle_watch(self) -> None:
        """Follow the indexed folders (new, changed, moved files are indexed as they land and
        the results on screen refresh), or stop following."""
        if self.library is None:
            self.notify("The index is not open yet.", severity="warning")
            return
        if self._watch_stop is not None:
            self._watch_stop.set()
            self._watch_stop = None
            self.status.live = False
            self.status.say("Stopped following the folders.")
            return
        self._watch_stop = threading.Event()
        self.status.live = True
        self.status.say("Following the indexed folders: files appear as they land (F6 stops).")
        self._watch(self._watch_stop)

    @work(thread=True, exit_on_error=False, group="watch")
    def _watch(self, stop: threading.Event) -> None:
        def on_notice(notice: Any) -> None:
            self._from_worker(self.notify, notice.message, severity="warning", timeout=10)

        try:
            self.library.watch(  # type: ignore[union-attr]
                None, stop=stop, on_batch=lambda b: self._from_worker(self._watched, b), on_notice=on_notice
            )
        except MmsearchError as exc:
            self._from_worker(self._watch_failed, stop, str(exc))
        except Exception as exc:  # noqa: BLE001 - never a traceback: the UI says what broke
            self._from_worker(self._watch_failed, stop, f"internal error ({type(exc).__name__}: {exc})")

    def _watched(self, batch: Any) -> None:
        r = batch.report
        if r.added + r.updated + r.moved + r.removed == 0:
            return
        if self._request is not None and not self._request.empty:
            self._refresh_results()
        else:
            self.status.say(
                f"Live: {r.added} added, {r.updated} updated, {r.moved} moved, {r.removed} removed."
            )

    def _watch_failed(self, stop: threading.Event, message: str) -> None:
        if self._watch_stop is stop:
            self._watch_stop = None
            self.status.live = False
        self.notify(f"Stopped following the folders: {message}", severity="error", timeout=10)

    def _refresh_results(self) -> None:
        """Search again for what is on screen: an indexing run committed new items meanwhile."""
        if self._request is not None and not self._request.empty:
            self._search_now()  # (queued behind a search already running)

    def _index_done(self, line: str, severity: str, skipped: list[tuple[str, str]]) -> None:
        self._cancel_index = None
        self.query_one("#indexing", IndexPanel).finished(line, skipped)
        self.notify(line, severity=severity, timeout=8)  # type: ignore[arg-type]
        self._refresh_results()

    # -- help and quitting --------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(HELP_SECTIONS))

    async def action_quit(self) -> None:
        if self._watch_stop is not None:
            self._watch_stop.set()
        if self._cancel_index is not None:
            self._cancel_index.set()  # let the run commit what it encoded
        if self._player is not None and self._player.poll() is None:
            self._player.terminate()
        self.exit()

    async def on_unmount(self) -> None:
        # A search or an indexing batch may still be running in a thread: let it end before the
        # catalog closes under it (an indexing run stops at the next file: cancel is set).
        if self._cancel_index is not None:
            self._cancel_index.set()
        if self._watch_stop is not None:
            self._watch_stop.set()
        try:
            await asyncio.wait_for(self.workers.wait_for_complete(), timeout=10)
        except TimeoutError:
            return  # leave the catalog open: the process is ending anyway
        if self.library is not None:
            self.library.close()
