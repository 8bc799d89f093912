"""What every stage of one indexing run shares: its report, progress and stage clock, the
cancel check, and the bounded thread map its readers run in."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from mmsearch.errors import IndexCancelled
from mmsearch.results import IndexReport, Progress

ProgressCallback = Callable[[Progress], None]

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], window: int
) -> Iterator[R]:
    """`pool.map` that keeps at most `window` tasks in flight (bounded memory), in order."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class RunState:
    """One run's account as its stages keep it: the report, progress sent out, the seconds
    each stage took, and whether the run was asked to stop."""

    def __init__(
        self, progress: ProgressCallback | None = None, cancel: threading.Event | None = None
    ) -> None:
        self.report = IndexReport()
        self.progress: ProgressCallback = progress or (lambda p: None)
        self.cancel = cancel
        self._lock = threading.Lock()  # reader threads add their decode time too

    def stage(self, name: str, since: float) -> None:
        """Add the time since `since` (a `perf_counter()`) to stage `name`."""
        self.add_seconds(name, time.perf_counter() - since)

    def add_seconds(self, name: str, seconds: float) -> None:
        with self._lock:
            self.report.stage_seconds[name] = self.report.stage_seconds.get(name, 0.0) + seconds

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def stop_if_cancelled(self) -> None:
        """Raise `IndexCancelled` once asked to stop. Called between files, after pending
        batches were committed, so nothing encoded is thrown away and nothing half-seen (a scan
        cut short) is taken for deleted."""
        if self.cancelled():
            raise IndexCancelled(
                f"Indexing was cancelled after {self.report.encoded} files were encoded; they "
                "are kept and searchable. Index again to go on where it stopped."
            )
