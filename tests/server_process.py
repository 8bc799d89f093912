"""Run `mmsearch serve` as a real process on a free loopback port (for clients nobody here wrote)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(index: Path, *args: str, token: str | None = None,
                   seconds: float = 120) -> Iterator[str]:
    """The base URL of `mmsearch serve --index INDEX ARGS` once it is ready; stopped afterwards."""
    port = free_port()
    env = dict(os.environ)
    if token:
        env["MMSEARCH_TOKEN"] = token
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmsearch", "serve", "--index", str(index), "--port", str(port), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        deadline = time.monotonic() + seconds
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mmsearch serve exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(f"{base}/ready", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mmsearch serve did not become ready")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
