"""mmsearch: local multimodal search. Index images and text documents; search by text or example.

    >>> from mmsearch import Library
    >>> lib = Library.open("my-index")
    >>> lib.index(["~/Pictures"])
    >>> lib.search("a cat on a sofa", k=5)

Importing this package loads no model libraries (torch, faiss, onnxruntime): they load on first
use. `Library` itself (numpy, SQLite, settings) loads on first access, so a shell that needs only
the errors or the result types at start (`mmsearch --help`, the TUI's first frame) starts sooner.
"""

from typing import TYPE_CHECKING, Any

from mmsearch.errors import (
    ClusterError,
    IndexBusyError,
    IndexCancelled,
    IndexFormatError,
    IndexNotFoundError,
    MediaError,
    MmsearchError,
    ModelMismatchError,
    ModelUnavailableError,
    NotIndexedError,
    QueryError,
    UnknownModelError,
)
from mmsearch.results import Hit, IndexReport, ItemInfo, Progress, Skipped, Stats
from mmsearch.version import __version__

__all__ = [
    "ClusterError",
    "Hit",
    "IndexBusyError",
    "IndexCancelled",
    "IndexFormatError",
    "IndexNotFoundError",
    "IndexReport",
    "ItemInfo",
    "Library",
    "MediaError",
    "MmsearchError",
    "ModelMismatchError",
    "ModelUnavailableError",
    "NotIndexedError",
    "Progress",
    "QueryError",
    "Skipped",
    "Stats",
    "UnknownModelError",
    "__version__",
]


if TYPE_CHECKING:
    from mmsearch.library import Library


def __getattr__(name: str) -> Any:
    if name == "Library":
        from mmsearch.library import Library

        return Library
    raise AttributeError(f"module 'mmsearch' has no attribute {name!r}")
