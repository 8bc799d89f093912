"""The terminal UI's speed: launch to first frame, and keystroke to results drawn, at scale.

* First frame: `mmsearch tui` started as a new process (the console script's imports, the
  settings, the app) until Textual has drawn its first frame, headless; and until the index is
  open and the model loaded (the status line says "Ready").
* Keystroke -> results drawn, through Pilot: the box holds a query but its last letter, the
  letter is pressed, and the clock stops when the table holding that query's results has been
  drawn. This includes any debounce (`mmsearch.tui.app.DEBOUNCE`, 0 by default). The baseline, measured in the
  same run on the same index and queries: `Library.search` called directly (k=50).

The collections are synthetic (clustered vectors written into a real catalog, as in
`scripts/bench_search.py`); every search shows 50 rows (min score -1), so drawing is never
skipped.

Usage:
    .venv/bin/python scripts/bench_tui.py [--sizes 10000 100000] [--queries 40]
        [--model hash-test] [--launches 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import QUERIES, fill

from mmsearch import Library
from mmsearch.config import Settings
from mmsearch.encoders.base import SEMANTIC
from mmsearch.tui import make_app
from mmsearch.tui.app import DEBOUNCE
from mmsearch.tui.request import Filters

CHILD = """
import time
began = time.time()
import asyncio, json, resource, sys
from mmsearch.cli import app as _cli  # what the console script imports first
from pathlib import Path
from mmsearch.tui import make_app

index = Path(sys.argv[1])
tui = make_app(index)  # as `mmsearch tui --index INDEX` does
imported = time.time()

async def watch(pilot):
    while not tui.first_frame_at:
        await asyncio.sleep(0.002)
    first = resource.getrusage(resource.RUSAGE_SELF)
    while tui.library is None:
        await asyncio.sleep(0.005)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"began": began, "imported": imported, "first_frame": tui.first_frame_at,
                      "ready": time.time(), "cpu": cpu.ru_utime + cpu.ru_stime,
                      "cpu_first": first.ru_utime + first.ru_stime}))
    tui.exit()

tui.run(headless=True, size=(120, 34), auto_pilot=watch)
"""


def launch_times(index: Path, launches: int) -> dict[str, list[float]]:
    keys = ("interpreter", "imports", "first_frame", "ready", "cpu", "cpu_first")
    out: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(launches):
        started = time.time()
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(index)], capture_output=True, text=True, check=True
        )
        line = next(l for l in child.stdout.splitlines() if l.startswith("{"))
        times = json.loads(line)
        out["interpreter"].append(times["began"] - started)
        out["imports"].append(times["imported"] - times["began"])
        out["first_frame"].append(times["first_frame"] - started)
        out["ready"].append(times["ready"] - started)
        out["cpu"].append(times["cpu"])
        out["cpu_first"].append(times["cpu_first"])
    return out


def tmux_first_frame(index: Path, launches: int) -> list[float]:
    """Launch `mmsearch tui` in a real terminal (a private tmux server) and time until its first
    frame is on the screen (the search box's placeholder shows), polling the pane every 5 ms."""
    program = Path(sys.executable).with_name("mmsearch")
    tmux = ["tmux", "-L", f"mmsearch-bench-{os.getpid()}", "-f", "/dev/null"]
    out = []
    try:
        for i in range(launches):
            started = time.time()
            subprocess.run(
                [*tmux, "new-session", "-d", "-s", f"b{i}", "-x", "120", "-y", "34",
                 f"{program} tui --index {index}"], check=True,
            )
            while True:
                pane = subprocess.run([*tmux, "capture-pane", "-p", "-t", f"b{i}"],
                                      capture_output=True, text=True, check=True).stdout
                if "Search: words" in pane:
                    out.append(time.time() - started)
                    break
                if time.time() - started > 60:
                    raise RuntimeError("the TUI never drew its first frame:\n" + pane)
                time.sleep(0.005)
            subprocess.run([*tmux, "kill-session", "-t", f"b{i}"], check=True)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, check=False)
    return out


async def keystrokes(index: Path, settings: Settings, queries: list[str]) -> tuple[list[float], list[float]]:
    """Wall time from key press to results drawn, and the process's CPU time over the same span
    (all threads: the search worker and the drawing), which a loaded machine does not inflate."""
    app = make_app(index, settings=settings)
    latencies, cpu = [], []
    async with app.run_test(size=(120, 34)) as pilot:
        while app.library is None:
            await asyncio.sleep(0.01)
        app.filters = Filters(min_score=-1.0)
        box = app.query_one("#search")
        for query in queries:
            box.value = query[:-1]
            await pilot.pause(0.1)
            await asyncio.gather(*(w.wait() for w in app.workers), return_exceptions=True)
            await pilot.pause()
            cpu_started = time.process_time()
            started = time.perf_counter()
            await pilot.press(query[-1])
            while not (app.shown == app.requested and app.drawn_at > started):
                await asyncio.sleep(0.001)
            cpu.append(time.process_time() - cpu_started)
            assert app.hits and len(app.hits) == 50, "every search draws 50 rows"
            latencies.append(app.drawn_at - started)
    return latencies, cpu


def direct(index: Path, settings: Settings, queries: list[str]) -> list[float]:
    out = []
    with Library.open(index, settings=settings) as lib:
        lib.search(queries[0], k=50, min_score=-1)
        for query in queries:
            started = time.perf_counter()
            lib.search(query, k=50, min_score=-1)
            out.append(time.perf_counter() - started)
    return out


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--model", default="hash-test")
    parser.add_argument("--launches", type=int, default=5)
    args = parser.parse_args()
    queries = [QUERIES[i % len(QUERIES)] + f" {i}" * (i >= len(QUERIES)) for i in range(args.queries)]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("MMSEARCH_HOME", tmp)
        for n, size in enumerate(args.sizes):
            settings = Settings(index=Path(tmp) / f"idx{size}", model=args.model)
            index = settings.index_path()
            with Library.open(index, model=args.model, settings=settings) as lib:
                started = time.perf_counter()
                fill(lib, size, lib.encoder().spaces[SEMANTIC])
                built = time.perf_counter() - started
            print(f"\n== {size:,} items, model {args.model} (filled in {built:.1f} s)")
            if n == 0:
                launch = launch_times(index, args.launches)
                print(f"launch -> first frame ({args.launches} launches)   {ms(launch['first_frame'])}")
                print(f"  of which interpreter start            {ms(launch['interpreter'])}")
                print(f"  of which imports (cli, textual, app)  {ms(launch['imports'])}")
                print(f"launch -> index open, model loaded      {ms(launch['ready'])}")
                print(f"CPU time until the first frame          {ms(launch['cpu_first'])}")
                print(f"CPU time until ready                    {ms(launch['cpu'])}")
                if shutil.which("tmux"):
                    real = tmux_first_frame(index, args.launches)
                    print(f"launch -> first frame in tmux (real terminal) {ms(real)}")
            base = direct(index, settings, queries)
            tui, tui_cpu = asyncio.run(keystrokes(index, settings, queries))
            print(f"Library.search direct (baseline)        {ms(base)}")
            print(f"keystroke -> results drawn (TUI)        {ms(tui)}   (debounce {DEBOUNCE * 1000:.0f} ms)")
            print(f"  CPU time per keystroke (all threads)  {ms(tui_cpu)}")
            print(
                f"TUI / direct (p50): {statistics.median(tui) / statistics.median(base):.1f}x; "
                f"TUI minus debounce minus search (p50): "
                f"{(statistics.median(tui) - DEBOUNCE - statistics.median(base)) * 1000:.1f} ms"
            )


if __name__ == "__main__":
    main()
