"""Indexing from the TUI: a folder indexed in a worker while searching goes on (the panel shows
its progress, x cancels it), and the live folders (F6): `IndexActions`, a part of `MmsearchApp`."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from textual import work

from mmsearch.errors import IndexCancelled, MmsearchError
from mmsearch.present import short_path
from mmsearch.tui.request import Request
from mmsearch.tui.screens import AddFolderScreen
from mmsearch.tui.widgets import IndexPanel

REFRESH_WHILE_INDEXING = 2.0
"""Seconds between searches again for the query on screen while an indexing run commits."""


class IndexActions:
    """Indexing and live folders (mixed into `MmsearchApp`, whose state it shares)."""

    library: Any | None
    _request: Request | None
    _cancel_index: threading.Event | None
    _watch_stop: threading.Event | None

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
