"""A Ray cluster on loopback for the tests: `ray start --head --block`, stopped by its pid.

`--block` keeps `ray start` in the foreground as the parent of the cluster's processes and
ends them when it is signalled, so the tests stop exactly the cluster they started (never
`ray stop`, which ends every Ray process on the machine).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    def __init__(self, proc: subprocess.Popen[bytes], address: str, log: Path) -> None:
        self.proc = proc
        self.address = address
        self.log = log

    def worker_pids(self, name: str = "EncodeWorker") -> list[int]:
        """Processes of this cluster whose title names `name` (Ray titles actors by class)."""
        pids = []
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                if name in " ".join(child.cmdline()):
                    pids.append(child.pid)
            except psutil.Error:
                continue
        return pids


@contextmanager
def local_cluster(cpus: int = 2, env: dict[str, str] | None = None) -> Iterator[LocalCluster]:
    """A head node on 127.0.0.1 with `cpus` CPUs (room for that many worker processes), no
    dashboard and a small object store. Workers import mmsearch from this checkout."""
    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="mmray-", dir="/tmp"))  # short: socket paths are capped
    log = temp / "ray-start.log"
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH")]))
    environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray_cli = Path(sys.executable).parent / "ray"
    cmd = [
        str(ray_cli), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
        f"--port={port}", f"--num-cpus={cpus}", "--num-gpus=0", "--include-dashboard=false",
        "--object-store-memory=100000000", f"--temp-dir={temp}", "--disable-usage-stats",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=environ, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited: {log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ray start did not listen: {log.read_text()[-2000:]}") from None
                time.sleep(0.3)
        yield LocalCluster(proc, address, log)
    finally:
        import ray

        ray.shutdown()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:  # what the cluster left in the session we started it in
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
