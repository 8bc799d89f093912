"""`mmsearch tui` in a real terminal (tmux): start it, type a query, read the screen."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tui_helpers import build_index

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (scripts/setup.sh installs it)"
)


def wait_for(tmux: list[str], text: str, seconds: float = 40.0) -> str:
    deadline = time.monotonic() + seconds
    screen = ""
    while time.monotonic() < deadline:
        screen = subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "tui"], capture_output=True, text=True, check=True
        ).stdout
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared on the screen:\n{screen}")


def test_typing_a_query_in_a_real_terminal_shows_the_file(tmp_path: Path) -> None:
    index = build_index(tmp_path)
    # A private tmux server: nothing shared with a user's sessions, and gone afterwards.
    tmux = ["tmux", "-L", f"mmsearch-test-{os.getpid()}", "-f", "/dev/null"]
    program = Path(sys.executable).with_name("mmsearch")
    command = [str(program) if program.exists() else sys.executable, *([] if program.exists() else ["-m", "mmsearch"])]
    env = {k: v for k, v in os.environ.items() if k.startswith(("MMSEARCH_", "PATH", "HOME", "LANG", "LC_"))}
    line = " ".join(
        ["env", *(shlex.quote(f"{k}={v}") for k, v in env.items()), "TERM=xterm-256color",
         *map(shlex.quote, command), "tui", "--index", shlex.quote(str(index))]
    )
    subprocess.run([*tmux, "new-session", "-d", "-s", "tui", "-x", "120", "-y", "34", line], check=True)
    try:
        wait_for(tmux, "Ready: 8 items")
        subprocess.run([*tmux, "send-keys", "-t", "tui", "-l", "bread"], check=True)
        screen = wait_for(tmux, "bread.md")
        assert "1 match" in screen or "matches" in screen
        wait_for(tmux, "Knead the dough")  # the preview shows the document's passage
        subprocess.run([*tmux, "send-keys", "-t", "tui", "C-q"], check=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            alive = subprocess.run([*tmux, "has-session", "-t", "tui"], capture_output=True, check=False)
            if alive.returncode != 0:
                break  # the app quit and its session closed
            time.sleep(0.2)
        else:
            raise AssertionError("ctrl+q did not quit the app")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, check=False)
