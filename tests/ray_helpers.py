"""A Ray cluster on loopback for the tests: `ray start --head --block`, stopped by its pid.

`--block` keeps `ray start` in the foreground as the parent of the cluster's processes and
ends them when it is signalled, so the tests stop exactly the cluster they started (never
`ray stop`, which ends every Ray process on the machine).
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
        """Processes of this cluster whose title names `name` (Ray titles actors by class):
        the descendants of `ray start`, found in /proc (Linux)."""
        parents: dict[int, int] = {}
        titles: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                titles[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # ended while we looked
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        ours = {self.proc.pid}
        grew = True
        while grew:
            found = {pid for pid, ppid in parents.items() if ppid in ours} - ours
            grew = bool(found)
            ours |= found
        return sorted(pid for pid in ours if name in titles.get(pid, ""))


def loopback_env() -> None:
    """Set, in this process (the driver) and so in the clusters it starts, before Ray is
    imported (Ray reads them once): keep 127.0.0.1 as the address (else Ray swaps in the
    machine's; the variable's name is Ray's) and a token of this test run's own, so no other
    Ray cluster on the machine accepts this driver, nor this cluster another's."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@contextmanager
def local_cluster(
    cpus: int = 2, env: dict[str, str] | None = None, hide: list[Path] | None = None
) -> Iterator[LocalCluster]:
    """A head node on 127.0.0.1 with `cpus` CPUs (room for that many worker processes), no
    dashboard and a small object store. Workers import mmsearch from this checkout.

    `hide`: folders the cluster sees empty (an empty file system mounted over each in a mount
    namespace of its own; needs root), as a node without the shared file system would."""
    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="mmray-", dir="/tmp"))  # short: socket paths are capped
    log = temp / "ray-start.log"
    loopback_env()
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH")]))
    ray_cli = Path(sys.executable).parent / "ray"
    cmd = [
        str(ray_cli), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
        f"--port={port}", f"--num-cpus={cpus}", "--num-gpus=0", "--include-dashboard=false",
        "--object-store-memory=100000000", f"--temp-dir={temp}", "--disable-usage-stats",
    ]
    if hide:
        mounts = " && ".join(f"mount -t tmpfs none {shlex.quote(str(p))}" for p in hide)
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               f"{mounts} && exec {shlex.join(cmd)}"]
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
        shutil.rmtree(temp, ignore_errors=True)  # the session's logs and sockets
