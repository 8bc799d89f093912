"""Live folders: how soon a photo renamed into a watched folder is found, and the idle cost.

    (1) latency: `mmsearch watch` runs in its own process (as a user runs it) over a folder
        indexed with --model. Photos are copied (untimed) into a staging folder on the same file
        system, then renamed into the watched folder one at a time, as a camera app or an
        atomic save does. For each, the clock runs from the rename until a search by the photo
        itself (`Library.search(image=...)` in this process, another one than the watcher's)
        returns it first. p50 / p99 over --files photos. Goal: p50 <= 2 s with the offline default.
    (2) idle CPU: the watcher process's CPU time (user + system, /proc) over --idle seconds with
        nothing changing, as a share of one core. Goal < 1 %.

The photos default to ../shared/data/flickr8k_1k/images (cycled if --files is larger).

Usage:
    .venv/bin/python scripts/bench_watch.py [--files 200] [--idle 60] [--model offline-default]
        [--photos DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mmsearch import Library, NotIndexedError

HERE = Path(__file__).resolve().parent
DEFAULT_PHOTOS = HERE.parent.parent / "shared" / "data" / "flickr8k_1k" / "images"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_start(proc: subprocess.Popen[bytes], out: Path, timeout: float) -> None:
    """Until the watcher's first JSON line (its catch-up index) is written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the watcher stopped: {(out.parent / 'watch.err').read_text()}")
        if out.exists() and out.read_text().strip():
            return
        time.sleep(0.1)
    raise SystemExit(f"the watcher did not start within {timeout} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--model", default="offline-default")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--aged", action="store_true",
                        help="Photos written a minute before their rename (default: just before).")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    sources = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    work = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    watched, staging, index = work / "photos", work / "staging", work / "index"
    watched.mkdir()
    staging.mkdir()
    for src in sources[:5]:  # a non-empty library to start from
        shutil.copy(src, watched / f"seed-{src.name}")
    env = {**os.environ, "MMSEARCH_HOME": str(work / "home")}
    cmd = [sys.executable, "-m", "mmsearch", "watch", str(watched), "--index", str(index),
           "--model", args.model, "--json"]
    out = work / "watch.jsonl"
    with open(out, "wb") as stdout, open(work / "watch.err", "wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=env)
    try:
        t = time.monotonic()
        wait_for_start(proc, out, 600)
        print(f"watcher up (model {args.model} loaded, 5 seed photos indexed) in {time.monotonic() - t:.1f} s")
        time.sleep(1.0)
        latencies: list[float] = []
        with Library.open(index, create=False, readonly=True) as lib:
            lib.search(image=sources[0], k=1)  # load this process's model before timing
            for n in range(args.files):
                src = sources[n % len(sources)]
                name = f"{n:04d}-{src.name}"
                staged = staging / name
                shutil.copy(src, staged)
                if args.aged:  # written a while ago (a photo moved in), not just now
                    os.utime(staged, (time.time() - 60, time.time() - 60))
                target = watched / name
                t = time.monotonic()
                os.rename(staged, target)
                while True:
                    try:
                        lib.item(target)
                    except NotIndexedError:
                        time.sleep(0.02)
                        continue
                    hits = lib.search(image=target, k=1)
                    if hits and hits[0].path == str(target):
                        break
                    time.sleep(0.02)
                latencies.append(time.monotonic() - t)
                if (n + 1) % 50 == 0:
                    print(f"  {n + 1} photos: p50 {statistics.median(latencies):.2f} s so far")
        time.sleep(3.0)  # let the last batch's saving finish before measuring idle
        before, t = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(args.idle)
        idle = (cpu_seconds(proc.pid) - before) / (time.monotonic() - t)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "files": len(latencies),
        "model": args.model,
        "aged": args.aged,
        "p50_s": statistics.median(latencies),
        "p99_s": percentile(latencies, 0.99),
        "max_s": max(latencies),
        "idle_seconds": args.idle,
        "idle_cpu_share_of_core": idle,
    }
    age = "written a minute before" if args.aged else "written just before"
    print(f"rename -> found first by its own image, {len(latencies)} photos {age} ({args.model}): "
          f"p50 {result['p50_s']:.2f} s, p99 {result['p99_s']:.2f} s, max {result['max_s']:.2f} s "
          f"(goal p50 <= 2 s)")
    print(f"idle CPU over {args.idle:.0f} s: {100 * idle:.2f} % of a core (goal < 1 %)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
