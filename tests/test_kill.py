"""An indexing process killed (SIGKILL) or interrupted (Ctrl-C) mid-run resumes without loss,
duplicates or re-encoding."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_image

from mmsearch import Library

N_FILES = 1500


def committed_items(catalog: Path) -> int:
    if not catalog.exists():
        return 0
    try:
        with sqlite3.connect(catalog, timeout=5) as db:
            return db.execute("SELECT count(*) FROM items WHERE status = 'ok'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def interrupt_indexing(media: Path, index: Path, sig: signal.Signals) -> tuple[int, bytes] | None:
    """Start indexing `media`, send `sig` once 100 files are committed; the exit code and
    stderr, or None when the run ended before the signal could interrupt it."""
    cmd = [
        sys.executable, "-m", "mmsearch", "index", str(media),
        "--index", str(index), "--model", "hash-test", "--batch-size", "8",
    ]
    # A shell starts background jobs with SIGINT ignored, and children inherit that (Python then
    # installs no KeyboardInterrupt handler): the run would finish as if Ctrl-C never came.
    # Give it the terminal's default, whatever launched the tests.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while committed_items(index / "catalog.db") < 100:
        assert proc.poll() is None, f"indexing ended before it could be killed: {proc.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    if proc.poll() is not None:
        # It finished while the last look at the catalog stalled (seconds, on a loaded machine).
        return None
    os.kill(proc.pid, sig)
    code = proc.wait(timeout=60)
    if code == 0 and committed_items(index / "catalog.db") == N_FILES:
        # Ctrl-C landed after the last file was committed, as the process exited: nothing was
        # left to interrupt. (A Ctrl-C swallowed mid-run also ends like this, on every attempt,
        # and the test then fails.)
        return None
    return code, proc.stderr.read()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_indexing_then_rerun_is_consistent(tmp_path: Path, sig: signal.Signals) -> None:
    media = tmp_path / "media"
    for i in range(N_FILES):
        make_image(media / f"d{i % 10}" / f"img{i:04d}.png", (i % 256, 40 * (i // 256), 90), size=(40, 30))
    for attempt in range(3):
        index = tmp_path / f"index{attempt}"
        outcome = interrupt_indexing(media, index, sig)
        if outcome is not None:
            break
    assert outcome is not None, "indexing always finished before it could be interrupted"
    code, stderr = outcome
    if sig == signal.SIGINT:
        assert code == 130 and b"committed work is kept" in stderr, stderr
    before = committed_items(index / "catalog.db")
    assert 0 < before < N_FILES, "the kill must land in the middle of the run"

    with Library.open(index) as lib:
        report = lib.index([media])
        assert report.encoded == N_FILES - before  # committed work is not encoded again
        assert lib.stats().items == {"image": N_FILES}
        db = sqlite3.connect(index / "catalog.db")
        paths = db.execute("SELECT count(*), count(DISTINCT path) FROM items").fetchone()
        assert paths == (N_FILES, N_FILES)
        per_space = dict(db.execute("SELECT space, count(*) FROM vectors GROUP BY space").fetchall())
        assert per_space == {"semantic": N_FILES, "visual": N_FILES}
        saved = {s: v["count"] for s, v in lib.stats().spaces.items() if v["count"]}
        assert saved == per_space  # (the model's audio space holds nothing here)
        probe = media / "d3" / "img0123.png"
        assert lib.search(image=probe, k=1)[0].path == str(probe)
