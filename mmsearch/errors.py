"""Every error mmsearch raises on purpose. Shells catch `MmsearchError` and print its message."""

from __future__ import annotations


class MmsearchError(Exception):
    """Base class: the message is one or two sentences that say what went wrong and what to do."""


class UnknownModelError(MmsearchError, ValueError):
    """A model name that is not in the registry."""


class ModelUnavailableError(MmsearchError):
    """A known model whose weights or packages cannot be found on this machine."""


class ModelMismatchError(MmsearchError):
    """An index was opened with a model other than the one that built it."""


class IndexNotFoundError(MmsearchError):
    """No index exists at the given location and creating one was not asked for."""


class IndexFormatError(MmsearchError):
    """The index on disk is newer than this mmsearch, or damaged beyond automatic repair."""


class MediaError(MmsearchError):
    """A file could not be read or decoded. `path` names it, `reason` says why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class QueryError(MmsearchError, ValueError):
    """A search request that cannot be answered as given (empty, or an unreadable example)."""


class NotIndexedError(MmsearchError, KeyError):
    """A path that the index does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class IndexBusyError(MmsearchError):
    """Another process is writing to the same index."""


class ConfigError(MmsearchError, ValueError):
    """A setting (option, environment variable, config file) with a value outside its range."""


class IndexDamagedError(IndexFormatError):
    """A file of the index is damaged; the message says which and how to recover."""


class ReadOnlyIndexError(MmsearchError):
    """A change was asked of an index opened read-only (or stored on read-only media)."""


class DiskFullError(MmsearchError, OSError):
    """The disk filled up while writing; what was committed before is kept."""


class IndexCancelled(MmsearchError):
    """An indexing run was cancelled; every batch committed before is kept and searchable."""


class ClusterError(MmsearchError):
    """Indexing on Ray: the package is missing, the cluster cannot be reached, or a worker
    cannot do the work (no model, other mmsearch version, files not at the same paths)."""
