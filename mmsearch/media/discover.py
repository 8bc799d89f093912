"""Finding the files to index: a fast, deterministic os.scandir walk over the user's roots."""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter

from mmsearch.errors import MediaError
from mmsearch.media.ignore import Ignore
from mmsearch.media.kinds import kind_of

log = logging.getLogger(__name__)

SKIPPED_FOLDERS: frozenset[str] = frozenset(
    {"@eaDir", "#recycle", "#snapshot", "__MACOSX", "$RECYCLE.BIN", "System Volume Information"}
)
"""Folders never walked besides hidden ones: NAS thumbnail caches, trash and OS bookkeeping.
Synology's @eaDir alone would otherwise add several thumbnail JPEGs per photo."""

BAD_FILE_NAME = "file name is not valid UTF-8; rename the file to index it"
BAD_FOLDER_NAME = "folder name is not valid UTF-8; rename the folder to index it"


@dataclass(frozen=True)
class FoundFile:
    """A supported file: its absolute path as the user reached it (symlinks not resolved)."""

    path: str
    size: int
    mtime_ns: int
    kind: str


@dataclass(frozen=True)
class Unreadable:
    """A file or folder that was found but cannot be indexed; `reason` is for the user."""

    path: str
    reason: str


Found = FoundFile | Unreadable
_Key = tuple[int, int]  # (st_dev, st_ino): the identity of a real file or folder


def discover(
    roots: Iterable[str | os.PathLike[str]], ignore: Ignore | None = None
) -> Iterator[FoundFile | Unreadable]:
    """Walk `roots` and yield every supported file, and every problem, in a stable order.

    Hidden entries (names starting with '.') and `SKIPPED_FOLDERS` are skipped. Symlinks are
    followed, but only after everything reachable without them, so a file reachable both ways is
    reported under its real path, once; the same real file or folder is never yielded twice and a
    symlink back to an enclosing folder yields a single `Unreadable(..., "symlink loop")`.
    Problems below a root (broken symlinks, folders that cannot be listed, names that are not
    valid UTF-8, pipes and devices) are yielded as `Unreadable` and the walk goes on. A root may
    be a single file, which is yielded even if hidden.

    Args:
        roots: Folders or files to walk, relative paths taken from the current directory.
        ignore: Exclusions of the index; `.mmsearchignore` files found while walking add theirs.

    Returns:
        An iterator of `FoundFile` and `Unreadable` in a stable order: depth first, each
        folder's files by name before its subfolders by name, symlinked entries last.

    Raises:
        MediaError: A root does not exist or cannot be reached. Every root is checked here,
            when `discover` is called, before anything is walked.
    """
    starts = [_stat_root(root) for root in roots]
    return _Walker(ignore or Ignore()).run(starts)


def _stat_root(root: str | os.PathLike[str]) -> tuple[str, os.stat_result]:
    path = os.path.abspath(os.fsdecode(os.fspath(root)))
    try:
        return path, os.stat(path)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and os.path.islink(path):
            reason = "broken symlink"
        elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
            reason = "no such file or folder"
        elif exc.errno == errno.ELOOP:
            reason = "symlink loop"
        else:
            reason = _os_reason(exc)
        raise MediaError(printable_path(path), reason) from exc


class _Walker:
    """The state of one `discover` run: what was seen, and the symlinks still to follow."""

    def __init__(self, ignore: Ignore) -> None:
        self.ignore = ignore
        self.visited_dirs: set[_Key] = set()
        # st_ino sets per st_dev: ints are much smaller than (dev, ino) tuples for huge trees.
        self.yielded_files: dict[int, set[int]] = {}
        # Symlinks met during the walk, with the folder identities above them (for loop checks).
        self.links: deque[tuple[str, frozenset[_Key], Ignore]] = deque()

    def run(self, starts: list[tuple[str, os.stat_result]]) -> Iterator[Found]:
        for path, st in starts:
            is_dir = stat.S_ISDIR(st.st_mode)
            if not _is_utf8(path):
                yield Unreadable(printable_path(path), BAD_FOLDER_NAME if is_dir else BAD_FILE_NAME)
            elif is_dir:
                rules = self.ignore.for_root(path)
                yield from self._walk_tree(
                    path, st, frozenset(), rules, via_link=os.path.islink(path)
                )
            elif (kind := kind_of(path)) is None:
                yield Unreadable(path, "not a supported image or text file")
            else:
                yield from self._file(path, st, kind)
        while self.links:
            yield from self._follow_link(*self.links.popleft())

    def _walk_tree(
        self,
        top: str,
        top_stat: os.stat_result,
        above: frozenset[_Key],
        ignore: Ignore,
        *,
        via_link: bool,
    ) -> Iterator[Found]:
        key = (top_stat.st_dev, top_stat.st_ino)
        if key in above:
            yield Unreadable(top, "symlink loop" if via_link else "folder loop (a bind mount?)")
            return
        if key in self.visited_dirs:  # reached before through another root or symlink
            log.debug("already walked %s under another path", top)
            return
        self.visited_dirs.add(key)
        # Iterative depth-first walk: deep trees must not hit Python's recursion limit.
        stack = [(top, above | {key}, ignore)]
        while stack:
            folder, ancestors, rules = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=attrgetter("name"))
            except OSError as exc:
                yield Unreadable(folder, f"cannot list this folder: {_os_reason(exc)}")
                continue
            rules = rules.entering(folder, [e.name for e in entries])
            subfolders = []
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue
                try:
                    if entry.is_symlink():
                        self.links.append((entry.path, ancestors, rules))
                    elif entry.is_dir(follow_symlinks=False):
                        if name in SKIPPED_FOLDERS or rules.excludes(entry.path, is_dir=True):
                            continue
                        if not _is_utf8(name):
                            yield Unreadable(printable_path(entry.path), BAD_FOLDER_NAME)
                            continue
                        st = entry.stat(follow_symlinks=False)
                        sub_key = (st.st_dev, st.st_ino)
                        if sub_key in ancestors:
                            yield Unreadable(entry.path, "folder loop (a bind mount?)")
                        elif sub_key not in self.visited_dirs:
                            self.visited_dirs.add(sub_key)
                            subfolders.append((entry.path, ancestors | {sub_key}, rules))
                    elif (kind := kind_of(name)) is not None:
                        if rules.excludes(entry.path, is_dir=False):
                            continue
                        if not _is_utf8(name):
                            yield Unreadable(printable_path(entry.path), BAD_FILE_NAME)
                        else:
                            st = entry.stat(follow_symlinks=False)
                            yield from self._file(entry.path, st, kind)
                except FileNotFoundError:
                    log.debug("%s vanished during the walk", entry.path)
                except OSError as exc:
                    yield Unreadable(printable_path(entry.path), _os_reason(exc))
            stack.extend(reversed(subfolders))

    def _follow_link(self, path: str, above: frozenset[_Key], rules: Ignore) -> Iterator[Found]:
        name = os.path.basename(path)
        kind = kind_of(name)
        if rules.excludes(path, is_dir=os.path.isdir(path)):
            return
        try:
            st = os.stat(path)
        except OSError as exc:
            # A dangling link is only worth a report if it could have been something we index:
            # a supported file, or (no extension) possibly a folder.
            if kind is not None or not os.path.splitext(name)[1]:
                if isinstance(exc, FileNotFoundError):
                    reason = "broken symlink"
                elif exc.errno == errno.ELOOP:
                    reason = "symlink loop"
                else:
                    reason = _os_reason(exc)
                yield Unreadable(printable_path(path), reason)
            return
        if stat.S_ISDIR(st.st_mode):
            if name in SKIPPED_FOLDERS:
                return
            if not _is_utf8(name):
                yield Unreadable(printable_path(path), BAD_FOLDER_NAME)
                return
            yield from self._walk_tree(path, st, above, rules, via_link=True)
        elif kind is not None:
            if not _is_utf8(name):
                yield Unreadable(printable_path(path), BAD_FILE_NAME)
            else:
                yield from self._file(path, st, kind)

    def _file(self, path: str, st: os.stat_result, kind: str) -> Iterator[Found]:
        if not stat.S_ISREG(st.st_mode):
            # Reading a named pipe would block the ingest forever.
            yield Unreadable(path, "not a regular file (a pipe, socket or device)")
            return
        inodes = self.yielded_files.setdefault(st.st_dev, set())
        if st.st_ino in inodes:  # the same real file under another name (symlink, hard link)
            log.debug("%s is a file already found under another path", path)
            return
        inodes.add(st.st_ino)
        yield FoundFile(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, kind=kind)


def printable_path(path: str) -> str:
    """`path` with bytes that are not valid UTF-8 shown as `\\xNN`, safe to print or store.

    Args:
        path: A path as Python gives it on POSIX, undecodable bytes as surrogate escapes.

    Returns:
        The same path if it is valid UTF-8, else a readable stand-in (not openable).
    """
    if _is_utf8(path):
        return path
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_utf8(name: str) -> bool:
    # os.fsdecode turns undecodable bytes into lone surrogates, which UTF-8 refuses to encode.
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return (exc.strerror or str(exc)).lower()
