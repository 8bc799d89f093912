"""One canonical form for every path that enters mmsearch (CLI, API, config).

The same file reached by two routes (`..`, a trailing slash, a symlinked folder, other letter case
on a case-insensitive file system) must be one item, so paths are made absolute, symlinks
resolved and, where the file system ignores case, spelled as the folder lists them.
"""

from __future__ import annotations

import os


def canonical_path(path: str | os.PathLike[str]) -> str:
    """The canonical absolute form of `path`; the path need not exist.

    `~` is expanded, the path made absolute against the current folder, `.`/`..` and symlinks
    resolved (`os.path.realpath`: the existing part is resolved, the rest kept as written), and on
    a case-insensitive file system each existing component takes the case stored on disk.

    Args:
        path: A file or folder path as a user typed it.

    Returns:
        An absolute path without a trailing slash ("/" for the file system root).
    """
    text = os.path.expanduser(os.fsdecode(os.fspath(path)))
    real = os.path.realpath(text)
    return _stored_case(real)


def is_within(path: str, folder: str) -> bool:
    """True when canonical `path` is `folder` itself or lies below it."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _stored_case(path: str) -> str:
    """`path` with each existing component spelled as its folder lists it.

    Only does work on a case-insensitive file system (macOS's APFS, Windows' NTFS), detected by
    the path existing under swapped case too; on Linux the first checks return at once.
    """
    swapped = path.swapcase()
    if swapped == path or not os.path.exists(path) or not os.path.exists(swapped):
        return path
    out = "/"
    for name in path.strip("/").split("/"):
        try:
            entries = os.listdir(out)
        except OSError:
            return path
        if name not in entries:
            folded = name.casefold()
            name = next((e for e in entries if e.casefold() == folded), name)
        out = os.path.join(out, name)
    return out
