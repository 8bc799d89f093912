"""What not to index: the index's own exclusions and `.mmsearchignore` files (gitignore rules).

Exclusions stored in an index are either absolute paths (a file or folder forgotten with
`mmsearch remove`) or gitignore-style patterns matched below every indexed folder (`*.tmp`,
`**/cache/`). A `.mmsearchignore` file in any folder adds gitignore rules for that folder and
below, exactly as a `.gitignore` does for git: later and deeper rules win, `!` re-includes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pathspec

from mmsearch.media.paths import is_within

log = logging.getLogger(__name__)

IGNORE_FILE = ".mmsearchignore"


def is_path_pattern(pattern: str) -> bool:
    """Absolute paths (and `~/...`) name one file or folder; anything else is a glob pattern."""
    return pattern.startswith(("/", "~"))


@dataclass(frozen=True)
class _Rules:
    base: str
    spec: pathspec.GitIgnoreSpec


class Ignore:
    """Decides whether a path below a root is excluded. Cheap to copy per folder while walking."""

    def __init__(self, exclusions: Iterable[str] = (), rules: tuple[_Rules, ...] = ()) -> None:
        exclusions = list(exclusions)
        self.paths = tuple(p for p in exclusions if is_path_pattern(p))
        globs = [p for p in exclusions if not is_path_pattern(p)]
        self._globs = _spec(globs) if globs else None
        self._rules = rules

    def for_root(self, root: str) -> Ignore:
        """The rules for walking `root`: index-wide globs are matched relative to it."""
        rules = (_Rules(root, self._globs),) if self._globs is not None else ()
        out = Ignore.__new__(Ignore)
        out.paths, out._globs, out._rules = self.paths, self._globs, rules
        return out

    def entering(self, folder: str, names: Iterable[str]) -> Ignore:
        """The rules inside `folder`, adding its `.mmsearchignore` if `names` lists one."""
        if IGNORE_FILE not in names:
            return self
        path = os.path.join(folder, IGNORE_FILE)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                spec = _spec(f.read().splitlines())
        except (OSError, ValueError) as exc:  # unreadable or a malformed pattern: say so, go on
            log.warning("%s is ignored: %s", path, exc)
            return self
        out = Ignore.__new__(Ignore)
        out.paths, out._globs, out._rules = self.paths, self._globs, (*self._rules, _Rules(folder, spec))
        return out

    def excludes(self, path: str, is_dir: bool) -> bool:
        """True when `path` (absolute) must not be indexed (or walked, for a folder)."""
        if any(is_within(path, p) for p in self.paths):
            return True
        verdict = None
        for rules in self._rules:  # outer folders first: a deeper file has the last word
            if not is_within(path, rules.base) or path == rules.base:
                continue
            rel = os.path.relpath(path, rules.base) + ("/" if is_dir else "")
            result = rules.spec.check_file(rel)
            if result.include is not None:
                verdict = result.include
        return bool(verdict)


def _spec(lines: Iterable[str]) -> pathspec.GitIgnoreSpec:
    """Git's ignore rules for `lines`. pathspec loads here, on the first rules: every command
    imports this module (through `mmsearch.media`), and a search never builds any."""
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)
