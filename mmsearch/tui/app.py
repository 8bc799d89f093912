"""`MmsearchApp`: the search screen, its start-up, the search-as-you-type worker and errors.

Everything slow runs in thread workers: opening the index and loading the model (after the first
frame), each search (a newer one cancels the older; a stale result never replaces a newer one),
the preview's file reading, and indexing (one `Library` serves the indexing thread and the
searches, which see each committed batch). What the keys do to the selected result lives in
`actions.py`, indexing and live folders in `indexing.py`, the bindings in `keys.py`.
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
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Footer, Header, Input

from mmsearch.errors import IndexNotFoundError, MmsearchError
from mmsearch.present import short_path, tilde
from mmsearch.results import Hit
from mmsearch.tui import keys
from mmsearch.tui.actions import ResultActions
from mmsearch.tui.indexing import IndexActions
from mmsearch.tui.preview import Preview
from mmsearch.tui.request import Filters, Request, parse_box
from mmsearch.tui.screens import HelpScreen, ProblemScreen
from mmsearch.tui.widgets import FilterPanel, IndexPanel, ResultList, StatusLine

DEBOUNCE = 0.0
"""Seconds of quiet after a keystroke before searching. None by default: searches never queue
up anyway (one runs at a time; keys typed meanwhile are searched together when it ends)."""
RESULTS = 50

_FATAL_TITLES = {
    "ModelMismatchError": "Index built with another model",
    "IndexDamagedError": "The index is damaged",
    "IndexFormatError": "The index cannot be read",
    "ModelUnavailableError": "The model is not installed",
    "UnknownModelError": "Unknown model",
    "ConfigError": "A setting is wrong",
    "ReadOnlyIndexError": "The index is read-only",
}


class MmsearchApp(ResultActions, IndexActions, App[None]):
    """Search a collection interactively by text, example image or example sound."""

    CSS_PATH = "mmsearch.tcss"
    TITLE = "mmsearch"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS: ClassVar[list[BindingType]] = keys.BINDINGS

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

    # -- help and quitting --------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(keys.HELP_SECTIONS))

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
