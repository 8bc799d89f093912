"""Which items a search may return: kind, folder, extension, date, size, pixel size, length.

A `Filters` value is built by the query parser (`kind:image folder:~/2019 after:2020-01
size>2mb`) or by programs directly, and turned into one SQL condition on the catalog's `items`
table (alias `i`), which the searcher applies to every space and to keyword matches alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from mmsearch.media.paths import canonical_path

ITEM_DATE_SQL = (
    "coalesce(substr(i.taken_at, 1, 19), "
    "strftime('%Y-%m-%dT%H:%M:%S', i.mtime_ns / 1000000000, 'unixepoch', 'localtime'))"
)
"""An item's date as `YYYY-MM-DDTHH:MM:SS`: when the photo was taken (EXIF) where known, else
when the file was last modified (local time, like the camera's clock)."""

_NO_VALUE = "\0"
"""Stands in for an empty intersection of allowed values (no kind, folder or extension is it)."""

MODIFIED_SQL = "strftime('%Y-%m-%dT%H:%M:%S', i.mtime_ns / 1000000000, 'unixepoch', 'localtime')"


@dataclass(frozen=True)
class Filters:
    """Restrict a search to some items. Empty fields do not restrict; all given fields must hold.

    Dates are ISO 8601 prefixes compared as local times: `after` is inclusive, `before`
    exclusive (`after="2020-01", before="2021"` is the year from January 2020 on).
    """

    kinds: Sequence[str] = ()
    folders: Sequence[str] = ()
    """Paths (the folder and everything below it), or bare names: any folder so named."""
    extensions: Sequence[str] = ()
    not_kinds: Sequence[str] = ()
    not_folders: Sequence[str] = ()
    not_extensions: Sequence[str] = ()
    after: str | None = None
    """The item's date (taken, else modified) is at or after this."""
    before: str | None = None
    modified_after: str | None = None
    """The file's modification time is at or after this."""
    modified_before: str | None = None
    min_size: int | None = None
    """Bytes, inclusive."""
    max_size: int | None = None
    min_width: int | None = None
    max_width: int | None = None
    min_height: int | None = None
    max_height: int | None = None
    min_duration: float | None = None
    """Seconds, inclusive (recordings and videos; other items have no length and never pass)."""
    max_duration: float | None = None

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) not in (None, ()) for f in fields(self))

    def merged(self, other: Filters) -> Filters:
        """Both restrictions at once: lists from both sides are kept when only one side gives
        them and intersected when both do; of two bounds the narrower wins."""
        values: dict[str, Any] = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, (tuple, list)) or isinstance(theirs, (tuple, list)):
                if f.name.startswith("not_"):
                    values[f.name] = tuple(dict.fromkeys([*mine, *theirs]))
                elif mine and theirs:
                    # No value in common: a value no item has, so nothing passes.
                    values[f.name] = tuple(v for v in mine if v in theirs) or (_NO_VALUE,)
                else:
                    values[f.name] = tuple(mine or theirs)
            elif mine is None or theirs is None:
                values[f.name] = theirs if mine is None else mine
            else:
                lower = f.name.startswith(("min_", "after", "modified_after"))
                values[f.name] = max(mine, theirs) if lower else min(mine, theirs)
        return Filters(**values)

    def sql(self) -> tuple[str, list[Any]] | None:
        """One condition on `items i` (with its parameters), or None when nothing restricts."""
        clauses: list[str] = []
        params: list[Any] = []

        def one_of(column: str, values: Sequence[str], negate: bool) -> None:
            marks = ",".join("?" * len(values))
            clauses.append(f"{column} {'NOT IN' if negate else 'IN'} ({marks})")
            params.extend(values)

        def under(folders: Sequence[str], negate: bool) -> None:
            parts = []
            for folder in folders:
                if is_folder_name(folder):
                    parts.append("instr('/' || i.folder || '/', ?) > 0")
                    params.append(f"/{folder}/")
                    continue
                folder = canonical_path(folder).rstrip("/") or "/"
                prefix = folder if folder.endswith("/") else folder + "/"
                parts.append("(i.folder = ? OR substr(i.folder, 1, ?) = ?)")
                params.extend([folder, len(prefix), prefix])
            either = "(" + " OR ".join(parts) + ")"
            clauses.append(f"NOT {either}" if negate else either)

        if self.kinds:
            one_of("i.kind", self.kinds, False)
        if self.not_kinds:
            one_of("i.kind", self.not_kinds, True)
        if self.folders:
            under(self.folders, False)
        if self.not_folders:
            under(self.not_folders, True)
        if self.extensions:
            one_of("i.ext", [normal_extension(e) for e in self.extensions], False)
        if self.not_extensions:
            one_of("i.ext", [normal_extension(e) for e in self.not_extensions], True)
        for value, column, op in (
            (self.after, ITEM_DATE_SQL, ">="),
            (self.before, ITEM_DATE_SQL, "<"),
            (self.modified_after, MODIFIED_SQL, ">="),
            (self.modified_before, MODIFIED_SQL, "<"),
            (self.min_size, "i.size", ">="),
            (self.max_size, "i.size", "<="),
            (self.min_width, "i.width", ">="),
            (self.max_width, "i.width", "<="),
            (self.min_height, "i.height", ">="),
            (self.max_height, "i.height", "<="),
            (self.min_duration, "i.duration", ">="),
            (self.max_duration, "i.duration", "<="),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(value)
        return (" AND ".join(clauses), params) if clauses else None


def is_folder_name(folder: str) -> bool:
    """A bare name (`2019`, `Holidays`) stands for a folder of that name anywhere; anything
    with a slash, `~`, `.` or `..` is a path (relative ones from the current folder)."""
    return "/" not in folder and not folder.startswith("~") and folder not in (".", "..")


def normal_extension(ext: str) -> str:
    return ext.lower().lstrip(".")
