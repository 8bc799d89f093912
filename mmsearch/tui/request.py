"""What the search box and the filter panel ask for, as `Library.search` arguments.

The box holds query text in the CLI's syntax (`2:"red car" -night`) and, anywhere in it, paths of
example images or sounds: typed, pasted, dropped from a file manager (terminals paste a dropped
file as its path, quoted or backslash-escaped, sometimes as a `file://` URL), or put there by
"more like this". A token is an example when it names an existing file whose extension
`mmsearch.media.kinds` knows as an image or a sound; everything else stays text, untouched.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from mmsearch.media.kinds import AUDIO, IMAGE, VIDEO, kind_of

_CANDIDATE = re.compile(r"'[^']+'|\"[^\"]+\"|(?:\\.|\S)+")
"""A quoted run or a run of non-blanks (backslash escapes kept together)."""
_ESCAPE = re.compile(r"\\(.)")


def _as_path(token: str) -> str | None:
    """The existing image or sound file `token` spells, else None."""
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        token = token[1:-1]
    else:
        token = _ESCAPE.sub(r"\1", token)
    if token.startswith("file://"):
        token = unquote(token.removeprefix("file://"))
    if not token or not (token[0] in "/~." or os.sep in token):
        return None  # a bare word is text even if a file of that name sits in the cwd
    path = os.path.abspath(os.path.expanduser(token))
    if kind_of(path) in (IMAGE, AUDIO, VIDEO) and os.path.isfile(path):
        return path
    return None


def quote_path(path: str) -> str:
    """`path` as the box spells an example: single-quoted when it holds blanks."""
    return f"'{path}'" if re.search(r"\s", path) or not path else path


@dataclass(frozen=True)
class Filters:
    """The filter panel's state."""

    kinds: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    min_score: float | None = None

    def describe(self) -> str:
        parts = [f"kind:{','.join(self.kinds)}"] if self.kinds else []
        parts += [f"folder:{f}" for f in self.folders]
        parts += [f"ext:{','.join(self.extensions)}"] if self.extensions else []
        if self.min_score is not None:
            parts.append(f"min:{self.min_score:.2f}")
        return " ".join(parts)


@dataclass(frozen=True)
class Request:
    """One search: text plus example files plus filters."""

    text: str | None
    images: tuple[str, ...] = ()
    audios: tuple[str, ...] = ()
    filters: Filters = field(default_factory=Filters)
    k: int = 50

    @property
    def empty(self) -> bool:
        return not (self.text or self.images or self.audios)

    def search_args(self) -> dict[str, Any]:
        """Keyword arguments for `Library.search`."""
        return {
            "text": self.text,
            "image": list(self.images),
            "audio": list(self.audios),
            "k": self.k,
            "min_score": self.filters.min_score,
            "kinds": self.filters.kinds,
            "folders": self.filters.folders,
            "extensions": self.filters.extensions,
        }


def parse_box(value: str, filters: Filters = Filters(), k: int = 50) -> Request:
    """Split the search box into text and example files (see the module docstring)."""
    images: list[str] = []
    audios: list[str] = []
    kept: list[str] = []
    last = 0
    for match in _CANDIDATE.finditer(value):
        path = _as_path(match.group())
        if path is None:
            continue
        # A video is an example of what is seen in it: its stored picture vectors.
        (audios if kind_of(path) == AUDIO else images).append(path)
        kept.append(value[last : match.start()])
        last = match.end()
    kept.append(value[last:])
    text = " ".join("".join(kept).split())
    return Request(text or None, tuple(images), tuple(audios), filters, k)
