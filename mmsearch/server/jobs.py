"""Indexing jobs of the HTTP service: one at a time, in a thread, with progress and cancel.

A job opens its own writable `Library` (so it takes the index's write lock, as `mmsearch index`
does) while the service's read-only one keeps answering searches from the committed state.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmsearch.config import Settings
from mmsearch.errors import IndexBusyError, IndexCancelled, MmsearchError, NotIndexedError
from mmsearch.results import Progress

log = logging.getLogger(__name__)


@dataclass
class Job:
    id: int
    folders: list[str]
    state: str = "running"
    phase: str | None = None
    done: int = 0
    total: int = 0
    current: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "state": self.state, "folders": self.folders, "phase": self.phase,
            "done": self.done, "total": self.total, "current": self.current,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "report": self.report, "error": self.error,
        }


class Jobs:
    """Starts, follows and cancels indexing jobs; remembers the last few."""

    KEEP = 20

    def __init__(self, index: Path, settings: Settings) -> None:
        self.index = index
        self.settings = settings
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._next = 1

    def current(self) -> Job | None:
        with self._lock:
            running = [j for j in self._jobs.values() if j.state == "running"]
            return running[0] if running else None

    def latest(self) -> Job | None:
        with self._lock:
            return self._jobs[max(self._jobs)] if self._jobs else None

    def get(self, job_id: int) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotIndexedError(f"No indexing job {job_id}; `GET /index/jobs` lists them.")
        return job

    def all(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: -j.id)

    def start(self, folders: list[str]) -> Job:
        """Start indexing `folders` (empty: every folder the index holds) in a thread.

        Raises:
            IndexBusyError: a job is running already.
        """
        with self._lock:
            if any(j.state == "running" for j in self._jobs.values()):
                raise IndexBusyError(
                    "An indexing job is running already; follow it in GET /status "
                    "or cancel it with DELETE /index/jobs/{id}."
                )
            job = Job(self._next, folders)
            self._next += 1
            self._jobs[job.id] = job
            for old in sorted(self._jobs)[: -self.KEEP]:
                del self._jobs[old]
        job.thread = threading.Thread(target=self._run, args=(job,), name=f"index-job-{job.id}", daemon=True)
        job.thread.start()
        return job

    def cancel(self, job_id: int) -> Job:
        job = self.get(job_id)
        job.cancel.set()
        return job

    def stop_all(self, timeout: float = 30.0) -> None:
        """Cancel a running job and wait for it to commit what it encoded (service shutdown)."""
        job = self.current()
        if job is not None and job.thread is not None:
            job.cancel.set()
            job.thread.join(timeout)

    def _run(self, job: Job) -> None:
        from mmsearch.library import Library

        def progress(p: Progress) -> None:
            job.phase, job.done, job.total, job.current = p.phase, p.done, p.total, p.path

        try:
            with Library.open(self.index, settings=self.settings) as lib:
                report = lib.index(job.folders or None, progress=progress, cancel=job.cancel)
            job.report = report.to_json()
            job.state = "done"
        except IndexCancelled as exc:
            job.state, job.error = "cancelled", str(exc)
        except MmsearchError as exc:
            job.state, job.error = "failed", str(exc)
        except Exception as exc:  # a bug: keep the service up, say so in the job and the log
            log.exception("indexing job %d failed", job.id)
            job.state, job.error = "failed", f"internal error ({type(exc).__name__}); see the server log"
        finally:
            job.finished_at = time.time()
