"""`mmsearch serve --watch`: the service follows its indexed folders in a background thread.

The follower opens its own writable `Library` (taking the write lock per batch, as `mmsearch
watch` does) while the service's read-only one keeps answering searches, which see each batch
as soon as it is committed. An indexing job started meanwhile and a batch of the follower
take turns: whichever finds the index busy waits (the follower retries on its next tick).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from mmsearch.config import Settings
from mmsearch.errors import MmsearchError

log = logging.getLogger(__name__)

_RETRY_SECONDS = 5.0


class Follower:
    """Follows the index's folders until `stop()`; `to_json()` says what it last did."""

    def __init__(self, index: Path, settings: Settings) -> None:
        self.index = index
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: dict[str, Any] | None = None
        self.notices: list[str] = []
        self.error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mmsearch-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop following; a batch in hand is committed (or cancelled between files) first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def to_json(self) -> dict[str, Any]:
        return {"watching": self._thread is not None and self._thread.is_alive(),
                "last": self.last, "notices": list(self.notices), "error": self.error}

    def _run(self) -> None:
        from mmsearch.library import Library

        def on_batch(batch: Any) -> None:
            self.last = {"reason": batch.reason, "roots": list(batch.roots), "at": time.time(),
                         "report": batch.report.to_json()}

        def on_notice(notice: Any) -> None:
            log.warning("%s", notice.message)
            self.notices.append(notice.message)

        while not self._stop.is_set():
            try:
                with Library.open(self.index, settings=self.settings) as lib:
                    lib.watch(None, stop=self._stop, on_batch=on_batch, on_notice=on_notice)
                return
            except MmsearchError as exc:  # nothing indexed yet, or a job holds the index
                self.error = str(exc)
            except Exception as exc:  # a bug: keep the service up, say so in the log
                log.exception("following the folders failed")
                self.error = f"internal error ({type(exc).__name__}); see the server log"
            self._stop.wait(_RETRY_SECONDS)
