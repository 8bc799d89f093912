"""SQLite's failures as mmsearch's typed errors, each naming the catalog and what to do."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmsearch.errors import (
    DiskFullError,
    IndexBusyError,
    IndexDamagedError,
    ReadOnlyIndexError,
)


def sqlite_message(exc: sqlite3.Error) -> str:
    return str(exc).lower()


@contextmanager
def translate_errors(path: Path) -> Iterator[None]:
    """SQLite's errors as mmsearch's typed ones, each naming the catalog and what to do."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        message = sqlite_message(exc)
        if "locked" in message or "busy" in message:
            raise IndexBusyError(
                f"The index at {path.parent} is busy (another process holds the catalog); "
                "try again when it has finished."
            ) from exc
        if "disk is full" in message or "disk i/o" in message and _disk_full(path):
            raise DiskFullError(
                f"The disk holding {path.parent} is full; nothing committed was lost. Free some "
                "space and run the same command again to resume."
            ) from exc
        if "readonly" in message or "read-only" in message:
            raise ReadOnlyIndexError(
                f"The index at {path.parent} is read-only (read-only media, or opened for "
                "searching only); it can be searched but not changed."
            ) from exc
        if "unable to open" in message:
            raise IndexDamagedError(
                f"The catalog {path} cannot be opened ({exc}); check the folder's permissions "
                "and that its drive is mounted."
            ) from exc
        raise IndexDamagedError(f"The catalog {path} failed: {exc}. {_RECOVER}") from exc
    except sqlite3.DatabaseError as exc:  # malformed pages, "file is not a database"
        raise IndexDamagedError(f"The catalog {path} is damaged ({exc}). {_RECOVER}") from exc


_RECOVER = (
    "Run `mmsearch doctor` for details; restore the index folder from a backup, or move it away "
    "and index again."
)


def _disk_full(path: Path) -> bool:
    try:
        return os.statvfs(path.parent).f_bavail == 0
    except OSError:
        return False


def is_disk_full(exc: BaseException) -> bool:
    """True for the errors a full disk raises (OS writes, SQLite, FAISS's C++ writer)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "no space left" in text or "disk is full" in text or "quota exceeded" in text

