"""Live folders: follow indexed folders with file-system events and feed the usual ingest diff.

The watcher never indexes anything itself. It turns events (watchfiles: inotify / FSEvents /
ReadDirectoryChangesW, or polling) into "these roots changed", waits until the changed files
stop growing, and hands the roots to an update callable (`Library` runs the same resumable,
crash-safe diff as `mmsearch index`, which recognises renames and moves by content hash).
Wherever events may have been lost (the watcher failed, the machine slept, a drive came back,
the periodic rescan is due) it asks for a rescan of the affected roots instead: correctness
always comes from the diff, never from trusting every event.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from mmsearch.config import Settings
from mmsearch.errors import DiskFullError, IndexBusyError, IndexCancelled
from mmsearch.media.discover import SKIPPED_FOLDERS
from mmsearch.media.ignore import IGNORE_FILE, Ignore
from mmsearch.media.kinds import kind_of
from mmsearch.media.paths import is_within
from mmsearch.results import IndexReport

log = logging.getLogger(__name__)

WATCH_LIMIT_SYSCTL = "sudo sysctl fs.inotify.max_user_watches=524288"
_TICK_MS = 250
"""How often the loop wakes without events (settle checks, roots coming back, stop)."""
_BACKOFF_SECONDS = 1.0
"""Pause before starting the event source again after it failed."""
_RETRY_SECONDS = 5.0
"""How long to wait before trying again when the index is busy or the disk full."""
_SLEEP_JUMP_SECONDS = 10.0
"""Wall time passing this much faster than monotonic time means the machine slept."""

Update = Callable[[list[str], "threading.Event | None"], IndexReport]


@dataclass(frozen=True)
class WatchBatch:
    """One update the watcher ran: why, over which roots, and what the diff did."""

    reason: str
    """"changes" (events), "rescan" (events may have been lost), "periodic", "resumed" (after
    sleep), "online" (a root came back), or "start" (the catch-up before watching)."""
    roots: tuple[str, ...]
    changed: int
    """Relevant paths named by events in this batch (0 for a rescan)."""
    report: IndexReport
    seconds: float
    """From the first event of the batch to the commit."""


@dataclass(frozen=True)
class WatchNotice:
    """Something the user should know while watching (the shells print `message` once).

    `kind` is "watch-limit" (the OS refused more watches: polling instead), "lost-events" (the
    event source failed: rescanning), "busy" (another process holds the index: retrying), or
    "disk-full" (retrying; nothing committed is lost).
    """

    kind: str
    message: str


@dataclass
class _Pending:
    """Changes seen but not yet indexed, per root."""

    since: float  # monotonic time of the first event
    paths: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    """Changed path -> (size, mtime_ns) at the last look (None: not looked at yet)."""
    reason: str = "changes"


def watch_limit_message(exc: BaseException) -> str:
    return (
        f"The system limit on watched folders was reached ({exc}); following these folders by "
        f"polling instead (slower to notice, more CPU). To raise the limit: `{WATCH_LIMIT_SYSCTL}` "
        "(add `fs.inotify.max_user_watches=524288` to /etc/sysctl.conf to keep it)."
    )


def _is_watch_limit(exc: BaseException) -> bool:
    text = str(exc).lower()
    return getattr(exc, "errno", None) == errno.ENOSPC or "watch limit" in text or "too many" in text


class FolderWatcher:
    """Follows `roots` until `stop` is set, calling `update(roots, cancel)` for changed ones.

    Args:
        roots: canonical root folders (missing ones are checked for and picked up when they
            appear: an unplugged drive keeps its items until then, as with `index`).
        index_dir: the index folder; events inside it are never followed.
        exclusions: reads the index's exclusions (paths and gitignore patterns); read again
            after each update, so `exclude` / `include` in another process take effect.
        settings: watch settings (`watch_*`).
        update: brings some roots up to date; raises `IndexBusyError` to be retried later.
        stop: set it from any thread to return soon (a running update is cancelled safely).
        on_batch: called after each update.
        on_notice: called with warnings for the user (each kind once per watcher).
    """

    def __init__(
        self,
        roots: Iterable[str],
        index_dir: str,
        exclusions: Callable[[], list[str]],
        settings: Settings,
        update: Update,
        stop: threading.Event,
        on_batch: Callable[[WatchBatch], None] | None = None,
        on_notice: Callable[[WatchNotice], None] | None = None,
    ) -> None:
        self.roots = sorted(set(roots), key=len, reverse=True)  # deepest root claims a path
        self.index_dir = index_dir
        self.settings = settings
        self._update = update
        self._stop = stop
        self._on_batch = on_batch or (lambda b: None)
        self._on_notice = on_notice or (lambda n: None)
        self._told: set[str] = set()
        self._exclusions = exclusions
        self._ignore = Ignore(exclusions())
        self._folder_rules: dict[str, Ignore] = {}
        self._pending: dict[str, _Pending] = {}
        self.polling = settings.watch_polling
        self._last_rescan = time.monotonic()
        self._retry_at = 0.0
        self._clock = (time.time(), time.monotonic())

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        """Watch until `stop` is set. The roots are taken as up to date when this starts."""
        while not self._stop.is_set():
            online = [r for r in self.roots if os.path.exists(r)]
            try:
                for changes in self._events(online):
                    if self._stop.is_set():
                        return
                    self._note(changes)
                    self._check_clock()
                    if [r for r in self.roots if os.path.exists(r)] != online:
                        self._rescan([r for r in self.roots if r not in online or not os.path.exists(r)], "online")
                        self._flush()
                        break  # the watched set changed: start a new event source over it
                    self._flush()
            except OSError as exc:
                if _is_watch_limit(exc) and not self.polling:
                    self._tell("watch-limit", watch_limit_message(exc))
                    self.polling = True
                    self._rescan(online, "rescan")
                elif isinstance(exc, FileNotFoundError):  # a root vanished as the watch began
                    self._stop.wait(_BACKOFF_SECONDS)
                else:
                    raise
            except RuntimeError as exc:  # watchfiles' internal error: events were lost
                log.warning("file events were lost (%s); rescanning", exc)
                self._tell("lost-events", f"File events were lost ({exc}); rescanning the folders.")
                self._rescan(online, "rescan")
                self._stop.wait(_BACKOFF_SECONDS)  # a source that keeps failing must not spin
            if not online:  # nothing to watch yet: wait for a root to appear
                self._stop.wait(_TICK_MS / 1000)
            self._flush()

    def _events(self, roots: list[str]) -> Iterator[set[tuple[int, str]]]:
        """Batches of (change, path) from watchfiles; an empty set every tick without events."""
        if not roots:
            return iter(())
        import watchfiles  # loaded here: `import mmsearch` stays light

        return watchfiles.watch(
            *roots,
            watch_filter=None,
            debounce=self.settings.watch_debounce_ms,
            step=self.settings.watch_step_ms,
            stop_event=self._stop,
            rust_timeout=_TICK_MS,
            yield_on_timeout=True,
            force_polling=self.polling,
            poll_delay_ms=self.settings.watch_poll_ms,
            ignore_permission_denied=True,
        )

    def _tell(self, kind: str, message: str) -> None:
        if kind not in self._told:
            self._told.add(kind)
            self._on_notice(WatchNotice(kind, message))

    # -- what events mean ---------------------------------------------------------------------

    def _note(self, changes: set[tuple[int, str]]) -> None:
        now = time.monotonic()
        for _change, raw in changes:
            path = os.path.abspath(raw)
            root = self._root_of(path)
            if root is None or not self._relevant(path, root):
                continue
            pending = self._pending.setdefault(root, _Pending(now))
            if os.path.basename(path) == IGNORE_FILE:
                self._folder_rules.clear()  # new rules: forget the cached ones
            pending.paths.setdefault(path, None)
        interval = self.settings.watch_rescan_minutes * 60
        if interval and now - self._last_rescan >= interval:
            self._rescan(self.roots, "periodic")

    def _rescan(self, roots: Iterable[str], reason: str) -> None:
        now = time.monotonic()
        self._last_rescan = now
        for root in roots:
            pending = self._pending.setdefault(root, _Pending(now))
            if pending.reason == "changes":
                pending.reason = reason

    def _check_clock(self) -> None:
        """After a sleep, events may be missing (a network share changed meanwhile): rescan."""
        wall, mono = time.time(), time.monotonic()
        slept = (wall - self._clock[0]) - (mono - self._clock[1])
        self._clock = (wall, mono)
        if slept > _SLEEP_JUMP_SECONDS:
            self._rescan(self.roots, "resumed")

    def _root_of(self, path: str) -> str | None:
        if is_within(path, self.index_dir):
            return None
        return next((r for r in self.roots if is_within(path, r)), None)

    def _relevant(self, path: str, root: str) -> bool:
        """Could this path change the index? Hidden, skipped and excluded paths cannot; nor can
        files of kinds never indexed (a deleted path without a suffix may have been a folder)."""
        rel = os.path.relpath(path, root)
        parts = [] if rel == "." else rel.split(os.sep)
        name = parts[-1] if parts else ""
        if name == IGNORE_FILE:
            return not any(p.startswith(".") or p in SKIPPED_FOLDERS for p in parts[:-1])
        if any(p.startswith(".") or p in SKIPPED_FOLDERS for p in parts):
            return False
        is_dir = os.path.isdir(path)
        if not is_dir and kind_of(name) is None and os.path.splitext(name)[1]:
            return False
        rules = self._rules_for(os.path.dirname(path), root)
        return not rules.excludes(path, is_dir=is_dir)

    def _rules_for(self, folder: str, root: str) -> Ignore:
        """The ignore rules in force inside `folder` (index exclusions + `.mmsearchignore`s)."""
        if folder in self._folder_rules:
            return self._folder_rules[folder]
        if folder == root or not is_within(folder, root):
            rules = self._ignore.for_root(root)
        else:
            rules = self._rules_for(os.path.dirname(folder), root)
        try:
            names = os.listdir(folder) if os.path.exists(os.path.join(folder, IGNORE_FILE)) else []
        except OSError:
            names = []
        rules = rules.entering(folder, names)
        if len(self._folder_rules) > 10_000:  # weeks of events in a huge tree: stay bounded
            self._folder_rules.clear()
        self._folder_rules[folder] = rules
        return rules

    # -- settling and updating ----------------------------------------------------------------

    def _settled(self, pending: _Pending, now: float) -> bool:
        """True when no changed file is still being written: its size and mtime are the same as
        at the last look, and it was last written `watch_settle_seconds` ago or more."""
        settle = self.settings.watch_settle_seconds
        wall = time.time()
        for path, seen in list(pending.paths.items()):
            try:
                st = os.stat(path)
            except OSError:
                pending.paths[path] = (-1, -1)  # gone: a delete is ready at once
                continue
            if os.path.isdir(path):
                pending.paths[path] = (-2, -2)  # its files send their own events
                continue
            now_seen = (st.st_size, st.st_mtime_ns)
            pending.paths[path] = now_seen
            if (seen is not None and seen != now_seen) or wall - st.st_mtime_ns / 1e9 < settle:
                return False  # the rest is looked at next time (a copy of 10,000 files)
        return True

    def _flush(self) -> None:
        """Update every root whose changes have settled (or waited too long already)."""
        now = time.monotonic()
        if not self._pending or now < self._retry_at:
            return
        due = []
        for root, pending in self._pending.items():
            waited = now - pending.since
            if self._settled(pending, now) or waited >= self.settings.watch_max_wait_seconds:
                due.append(root)
        if not due:
            return
        batch = {root: self._pending.pop(root) for root in due}
        reasons = {p.reason for p in batch.values()}
        reason = next((r for r in ("rescan", "resumed", "online", "periodic") if r in reasons), "changes")
        try:
            report = self._update(sorted(due), self._stop)
        except (IndexBusyError, DiskFullError) as exc:  # weeks unattended: wait, do not give up
            kind = "busy" if isinstance(exc, IndexBusyError) else "disk-full"
            self._tell(kind, f"{exc} Trying again every {_RETRY_SECONDS:.0f} s.")
            self._retry_at = time.monotonic() + _RETRY_SECONDS
            for root, pending in batch.items():  # keep them for the next try
                self._pending.setdefault(root, pending)
            return
        except IndexCancelled:
            return  # stopping; the next start catches up with a rescan
        self._ignore, self._folder_rules = Ignore(self._exclusions()), {}
        since = min(p.since for p in batch.values())
        changed = sum(len(p.paths) for p in batch.values())
        self._on_batch(WatchBatch(reason, tuple(sorted(due)), changed, report, time.monotonic() - since))
