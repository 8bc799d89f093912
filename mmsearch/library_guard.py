"""How `Library` guards its storage: failures as typed errors that name the index and say what
to do, and the lock that lets one process at a time write to an index."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmsearch.errors import DiskFullError, IndexBusyError, MmsearchError, ReadOnlyIndexError
from mmsearch.library_open import CATALOG
from mmsearch.store.catalog_errors import is_disk_full, translate_errors
from mmsearch.store.spaces import SpaceSet


@contextmanager
def storage_errors(folder: Path, spaces: SpaceSet) -> Iterator[None]:
    """Storage failures as typed errors that name the index and say what to do."""
    try:
        with translate_errors(folder / CATALOG):
            yield
    except MmsearchError:
        raise
    except (OSError, RuntimeError) as exc:
        if not is_disk_full(exc):
            raise
        spaces.clean_temp_files()
        raise DiskFullError(
            f"The disk holding {folder} is full; nothing committed was lost. Free some "
            "space and run the same command again to resume."
        ) from exc


@contextmanager
def write_lock(folder: Path, spaces: SpaceSet, *, readonly: bool) -> Iterator[None]:
    """Only one process writes to an index at a time."""
    if readonly:
        raise ReadOnlyIndexError(
            f"The index at {folder} is open read-only (or on read-only media): it can be "
            "searched but not changed."
        )
    try:
        lock = open(folder / "write.lock", "w")
    except OSError as exc:
        raise ReadOnlyIndexError(f"Cannot write to the index at {folder}: {exc.strerror}.") from exc
    with lock, storage_errors(folder, spaces):
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusyError(
                f"Another mmsearch process is writing to {folder}; wait for it to finish."
            ) from None
        yield
