"""The desktop around the TUI: open a file or its folder with the system opener, play a sound.

Each function returns the command it started (for the status line and the tests) or raises
`ToolMissing` with a sentence saying what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

PLAYERS: tuple[str, ...] = ("ffplay", "paplay", "aplay", "afplay")
"""Sound players tried in order. ffplay first: it decodes every format and can start at the hit."""


class ToolMissing(Exception):
    """No program on this system can do what was asked; the message says what to install."""


def launch(command: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start `command` detached from the terminal (its output would draw over the UI)."""
    return subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _opener() -> str:
    name = "open" if sys.platform == "darwin" else "xdg-open"
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(
            f"No {name} on this system to open files with; install xdg-utils "
            "(or copy the path with c)."
        )
    return found


def open_command(path: str) -> list[str]:
    """The command that opens `path` in its default application."""
    return [_opener(), path]


def reveal_command(path: str) -> list[str]:
    """The command that shows `path` in its folder (macOS selects it; elsewhere opens the folder)."""
    opener = _opener()
    if sys.platform == "darwin":
        return [opener, "-R", path]
    return [opener, os.path.dirname(path) or "."]


VIDEO_PLAYERS: tuple[str, ...] = ("mpv", "vlc", "ffplay")
"""Video players that can start at a time, tried in order; else the system opener (from the start)."""


def video_command(path: str, start: float | None = None) -> list[str]:
    """The command that plays a video from `start` seconds (the hit's moment)."""
    at = f"{start or 0.0:.2f}"
    for name in VIDEO_PLAYERS:
        found = shutil.which(name)
        if found is None:
            continue
        if name == "mpv":
            return [found, f"--start={at}", path]
        if name == "vlc":
            return [found, f"--start-time={at}", path]
        return [found, "-autoexit", "-loglevel", "quiet", "-ss", at, path]
    return open_command(path)


def play_command(path: str, start: float | None = None) -> list[str]:
    """The command that plays `path` (from `start` seconds when the player can seek)."""
    for name in PLAYERS:
        found = shutil.which(name)
        if found is None:
            continue
        if name == "ffplay":
            seek = ["-ss", f"{start:.2f}"] if start else []
            return [found, "-nodisp", "-autoexit", "-loglevel", "quiet", *seek, path]
        return [found, path]
    raise ToolMissing(
        "No sound player is installed (looked for ffplay, paplay, aplay, afplay); "
        "install ffmpeg or pulseaudio-utils to play sounds."
    )
