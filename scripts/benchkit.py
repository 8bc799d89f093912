"""What the evaluation and benchmark scripts share: where the data is, reading its manifests,
retrieval metrics, timing a step or a whole process, memory, and test speech.

Scripts are not a package: each puts its own folder on `sys.path` and imports this module.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
"""The labelled development data (never copied into the repository)."""


# --------------------------------------------------------------------------------------------
# Datasets


def real(path: str | os.PathLike[str]) -> str:
    """One spelling per file, so manifest paths and hit paths compare equal."""
    return os.path.realpath(path)


def read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def half(path: str) -> str:
    """"fit" or "check": a photo's half, the same in every script (a hash of its manifest path).
    Settings are chosen on the fit half; the check half reports what they do on photos they
    never saw."""
    return "fit" if hashlib.sha1(path.encode()).digest()[0] % 2 == 0 else "check"


# --------------------------------------------------------------------------------------------
# Retrieval metrics


def recall_at(ranks: Sequence[int | None], k: int) -> float:
    """Share of queries whose one relevant item is within the first k (ranks are 1-based)."""
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def average_precision(ranking: Sequence[str], relevant: set[str]) -> float:
    """Mean of precision@rank over every relevant item; relevant items never ranked count 0."""
    hits, total = 0, 0.0
    for position, path in enumerate(ranking, 1):
        if path in relevant:
            hits += 1
            total += hits / position
    return total / len(relevant)


def precision_at(ranking: Sequence[str], relevant: set[str], k: int) -> float:
    return sum(1 for path in ranking[:k] if path in relevant) / k


def mean_or_nan(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def rank_of(ranking: Sequence[str], target: str) -> int | None:
    try:
        return ranking.index(target) + 1
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Timing: one step, or one whole process


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def run(
    cmd: list[str], env: dict[str, str], cwd: Path | None = None
) -> tuple[float, float, str, float]:
    """(wall seconds, peak RSS in MB, stdout, CPU seconds) of one whole process (peak and CPU
    only for `measured` commands)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err.decode()[-2000:]}")
    return wall, _reported(err, "PEAK_KB=") / 1024, out.decode(), _reported(err, "CPU_S=")


# RUSAGE_CHILDREN is a running maximum over all children, so each command runs under a tiny
# wrapper that reports its own child's peak (and CPU time, user + system) from wait4. CPU time
# says what a process costs whatever the load: on a busy machine wall time also depends on how
# many threads a tool runs (each gets its share of the cores).
_PEAK_WRAPPER = (
    "import os, resource, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n    os.execvp(sys.argv[1], sys.argv[1:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "sys.stderr.write(f'\\nPEAK_KB={usage.ru_maxrss}\\nCPU_S={usage.ru_utime + usage.ru_stime}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def measured(cmd: list[str]) -> list[str]:
    return [sys.executable, "-c", _PEAK_WRAPPER, *cmd]


# A cold text search, phase by phase, in a fresh process (CPU ms: stable on a loaded machine). It
# does what `mmsearch search` does, in its order; where the tree has `short_lived` (the collector
# off and frozen at the end, numpy with one BLAS thread), it runs inside it as the command does.
# What the phases do not cover (interpreter start, imports of the entry point, teardown) is the
# process's CPU time less theirs.
COLD_SEARCH_PHASES = r"""
import sys, time
marks, last = [], [time.perf_counter(), time.process_time()]
def mark(name):
    now = [time.perf_counter(), time.process_time()]
    marks.append((name, now[0] - last[0], now[1] - last[1]))
    last[:] = now
import mmsearch.cli
from mmsearch.cli import common
mark("CLI module (click)")
common.state["process"] = True
short_lived = getattr(common, "short_lived", None)
run = short_lived() if short_lived else None
if run:
    run.__enter__()
import numpy
mark("numpy")
try:  # what `mmsearch search` reads its settings with (before config_quick: pydantic-settings)
    from mmsearch.config_quick import load_settings
except ImportError:
    from mmsearch.config import load_settings
settings = load_settings(from_cli=True, index=sys.argv[1])
mark("settings")
from mmsearch.library import Library
mark("import Library (catalog, query)")
lib = Library.open(settings.index_path(), create=False, readonly=True, settings=settings)
mark("open the index")
lib.encoder().embed_texts([sys.argv[2]])
mark("text model: tokenizer, weights, run")
import faiss
mark("import faiss")
lib.search(sys.argv[2], k=10, min_score=-1)
mark("search: vector index, reranker, hits")
if run:
    run.__exit__(None, None, None)
for name, wall, cpu in marks:
    print(f"PHASE {name}\t{wall * 1000:.0f}\t{cpu * 1000:.0f}")
"""


def cold_search_phases(index: Path, query: str, env: dict[str, str], cwd: Path | None = None) -> list[tuple[str, float]]:
    """CPU milliseconds of each phase of a cold text search in a fresh process, and of the rest of
    that process (interpreter start and teardown)."""
    _, _, out, cpu = run(measured([sys.executable, "-c", COLD_SEARCH_PHASES, str(index), query]), env, cwd=cwd)
    phases = [(name, float(ms)) for name, _, ms in
              (line.removeprefix("PHASE ").split("\t") for line in out.splitlines() if line.startswith("PHASE "))]
    phases.append(("interpreter start and teardown", cpu * 1000 - sum(ms for _, ms in phases)))
    return phases


@contextmanager
def baseline_tree(revision: str, where: Path) -> Iterator[Path]:
    """The code of git `revision` checked out at `where` (a temporary worktree, removed after),
    its modules compiled as an install would, for a benchmark to run against this tree."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(where), revision],
                   check=True)
    try:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(where / "mmsearch")],
                       check=True, stdout=subprocess.DEVNULL)
        yield where
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], check=False)


def print_phase_table(trees: dict[str, Path], index: Path, query: str, env: dict[str, str], rounds: int) -> None:
    """The cold text search phase by phase in each tree (name -> code tree), the trees taking
    turns; medians of CPU ms."""
    ms: dict[tuple[str, str], list[float]] = {}
    order: list[str] = []
    for round_no in range(rounds):
        names = list(trees) if round_no % 2 else list(trees)[::-1]
        for name in names:
            tree = trees[name]
            for phase, value in cold_search_phases(index, query, {**env, "PYTHONPATH": str(tree)}, cwd=tree):
                ms.setdefault((phase, name), []).append(value)
                if phase not in order:
                    order.append(phase)
    print(f"\n== cold text search phase by phase, CPU ms, medians of {rounds} interleaved rounds")
    print(f"{'phase':<46} " + " ".join(f"{name:>22}" for name in trees))
    for phase in order:
        print(f"{phase:<46} " + " ".join(
            f"{statistics.median(ms[(phase, name)]) if (phase, name) in ms else float('nan'):>22.0f}" for name in trees))
    totals = [sum(statistics.median(v) for (p, n), v in ms.items() if n == name) for name in trees]
    print(f"{'total (sum of medians)':<46} " + " ".join(f"{t:>22.0f}" for t in totals))


def print_phases(index: Path, query: str, env: dict[str, str], cwd: Path | None = None) -> None:
    phases = cold_search_phases(index, query, env, cwd)
    for name, ms in phases:
        print(f"  {name:<46} {ms:6.0f} ms CPU")
    print(f"  {'total (the whole process)':<46} {sum(ms for _, ms in phases):6.0f} ms CPU")


def _reported(stderr: bytes, key: str) -> float:
    for line in reversed(stderr.decode(errors="replace").splitlines()):
        if line.startswith(key):
            return float(line.removeprefix(key))
    return float("nan")


# --------------------------------------------------------------------------------------------
# Memory of this process


def peak_rss_mib() -> float:
    """This process's peak resident set so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def hwm_mib() -> float:
    """The kernel's peak RSS of this process (VmHWM), which `reset_peak_rss` can reset."""
    with open("/proc/self/status") as handle:
        found = re.search(r"VmHWM:\s+(\d+)", handle.read())
    return int(found.group(1)) / 1024 if found else float("nan")


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0), so a later peak is one step's own
    and not the model load's: getrusage's ru_maxrss follows unless a thread exited meanwhile
    (the kernel keeps exited threads' peak), so VmHWM is read as well."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# Test speech


def espeak(text: str, path: Path, voice: str = "en-us", speed: int = 175) -> None:
    command = ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text]
    subprocess.run(command, check=True, capture_output=True)
