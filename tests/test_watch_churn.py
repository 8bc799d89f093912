"""A small churn under a running watcher (scripts/churn_watch.py) ends equal to a fresh index."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "churn_watch.py"


@pytest.mark.parametrize("kill", [False, True], ids=["watching", "killed-9-and-restarted"])
def test_churn_leaves_the_index_equal_to_a_fresh_one(kill: bool) -> None:
    args = [sys.executable, str(SCRIPT), "--files", "200", "--model", "hash-test"] + (["--kill"] if kill else [])
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parent.parent)}
    done = subprocess.run(args, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    line = done.stdout.strip().splitlines()[-1]
    assert "missing 0, duplicates/extra 0, left over 0" in line and line.endswith("SAME"), line
