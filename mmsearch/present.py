"""Formatting every shell shares (CLI, TUI, HTTP, web page): times, sizes, paths, escaped text.

Pure functions of values, with no I/O and no heavy imports, so the shells can sit on top of this
module without importing one another.
"""

from __future__ import annotations

import os
import unicodedata


def clock(seconds: float, *, hours: bool = False) -> str:
    """Seconds as `MM:SS`, or `HH:MM:SS` with `hours`."""
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, sec = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{sec:02d}" if hours else f"{h * 60 + m:02d}:{sec:02d}"


def time_range(start: float | None, end: float | None) -> str:
    """Where in a recording a hit is, e.g. `01:02:15-01:02:25` (hours shown past the first)."""
    if start is None:
        return ""
    end = start if end is None else end
    hours = end >= 3600
    return f"{clock(start, hours=hours)}-{clock(end, hours=hours)}"


def escape(text: str, *, backslash: bool = True) -> str:
    r"""`text` on one line: backslash, tab, newline, carriage return and other control characters
    become `\\`, `\t`, `\n`, `\r`, `\xNN` (undecodable file-name bytes too), so each line of
    plain output is one record whatever a file name holds. `backslash=False` leaves backslashes
    alone (for messages meant for people, where the round trip does not matter)."""
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\" if backslash else ch)
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def human_size(size: int | None) -> str:
    """Bytes for people: `512 B`, `1.5 MB` (binary multiples, as file managers show them)."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def format_elapsed(seconds: float) -> str:
    """A search's duration for a status line."""
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.0f} s"


def short_path(path: str) -> str:
    """`path` with the home folder written as ~ (shorter, and the same on every machine)."""
    home = os.path.expanduser("~")
    if home not in ("", "/") and (path == home or path.startswith(home + os.sep)):
        return "~" + path[len(home) :]
    return path


def tilde(message: str) -> str:
    """Every path under the home folder in `message` written with ~ (error messages name paths)."""
    home = os.path.expanduser("~")
    if home in ("", "/"):
        return message
    return message.replace(home + os.sep, "~" + os.sep)
