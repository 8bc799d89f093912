"""Stress test of mmsearch's concurrency guarantees: one `Library` shared by several threads
while other processes write to the same index.

What runs at the same time, against one index folder:

* T threads sharing ONE long-lived `Library` object, each looping
  `search("red")`, `search(image=<random image>)` and `stats()`; every exception is recorded;
* a process `mmsearch index MEDIA --index INDEX` adding N images;
* a loop of `mmsearch remove EXTRA_FOLDER --index INDEX` processes, one call at a time, which
  should cleanly answer "busy" while the indexer writes and succeed afterwards.

Afterwards a FRESH `Library` and the long-lived shared one must both find every indexed image
first when searching by that very image, return no path twice in a result list, and no longer
hold the removed folders' images.

Exit code 0 only when nothing raised, no process failed or printed a traceback, every image found
itself first (100 %), no result list held a duplicate, and the removed images are gone.

Usage:
    .venv/bin/python scripts/stress_concurrency.py [--images 2000] [--threads 4]
        [--model hash-test] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import mmsearch
from mmsearch import Library
from mmsearch.encoders.hashing import COLOURS

SUBFOLDERS = 20
EXTRA_FOLDERS = 3
IMAGES_PER_EXTRA = 10
SEED_IMAGES = 12
IMAGE_SIZE = (64, 48)
GRID = 8  # the hash-test model's `visual` vector is an 8x8 colour thumbnail
BUSY_MARKERS = ("another mmsearch process is writing", "busy")
NOT_YET_MARKER = "is not in the index"


# -- media ------------------------------------------------------------------------------------


@dataclass
class Media:
    """The generated tree. `images` are the N images under `root` that must stay indexed."""

    root: Path
    seed: Path
    seed_images: list[Path]
    images: list[Path]
    extras: dict[Path, list[Path]]  # folder inside `root` to remove -> its images

    def kept(self) -> list[Path]:
        """Every image that must be in the index at the end."""
        return self.seed_images + self.images

    def removed(self) -> list[Path]:
        """Every image that must be gone from the index at the end."""
        return [p for files in self.extras.values() for p in files]

    def everything(self) -> list[Path]:
        """Every generated image: what the search threads pick their examples from."""
        return self.kept() + self.removed()


def write_image(path: Path, rng: np.random.Generator) -> None:
    """Write one distinct image: random GRID x GRID colour blocks around a palette colour.

    The blocks are what the hash-test model's 8x8 `visual` thumbnail sees, so two images are
    as different there as their random blocks (self-first by image is then unambiguous). The
    base colour comes from the model's own palette so text queries such as "red" find about
    one image in nine (its `semantic` vector is the name of the dominant colour).
    """
    base = np.array(list(COLOURS.values())[rng.integers(len(COLOURS))], dtype=np.float32)
    blocks = base + rng.uniform(-60, 60, size=(GRID, GRID, 3))
    small = Image.fromarray(np.clip(blocks, 0, 255).astype(np.uint8))
    image = small.resize(IMAGE_SIZE, Image.Resampling.NEAREST)
    if path.suffix == ".jpg":
        image.save(path, "JPEG", quality=92)
    else:
        image.save(path, "PNG")


def write_images(folder: Path, names: Iterable[str], rng: np.random.Generator) -> list[Path]:
    """Write one image per name into `folder` (created); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = folder / name
        write_image(path, rng)
        paths.append(path)
    return paths


def make_media(workdir: Path, n: int, seed: int) -> Media:
    """Create the seed folder (outside the media root), N images over SUBFOLDERS folders, and
    EXTRA_FOLDERS folders inside the media root that the remover will make the index forget."""
    rng = np.random.default_rng(seed)
    root = workdir / "media"
    seed_dir = workdir / "seed"
    seed_images = write_images(seed_dir, (f"seed{i:03d}.png" for i in range(SEED_IMAGES)), rng)
    images: list[Path] = []
    for f in range(SUBFOLDERS):
        # Alternate PNG and JPEG: both decoders run, and JPEG loss must not break self-first.
        names = [f"img{i:05d}.{'jpg' if i % 2 else 'png'}" for i in range(f, n, SUBFOLDERS)]
        images += write_images(root / f"folder{f:02d}", names, rng)
    extras = {
        root / f"extra{e}": write_images(
            root / f"extra{e}", (f"x{e}_{i:03d}.png" for i in range(IMAGES_PER_EXTRA)), rng
        )
        for e in range(EXTRA_FOLDERS)
    }
    return Media(root, seed_dir, seed_images, images, extras)


# -- recording failures -----------------------------------------------------------------------


def mmsearch_frames(exc: BaseException) -> str:
    """`library.py:245 search -> catalog.py:196 item_by_path`: the frames inside the mmsearch
    package, which say where a failure comes from more briefly than the whole traceback."""
    package = str(Path(mmsearch.__file__).parent)
    frames = traceback.extract_tb(exc.__traceback__)
    return " -> ".join(
        f"{Path(f.filename).name}:{f.lineno} {f.name}"
        for f in frames
        if f.filename.startswith(package)
    )


@dataclass
class ErrorKind:
    """One group of like failures: how many, and the first one's details."""

    where: str
    type: str
    message: str
    count: int = 0
    first_traceback: str = ""
    chain: str = ""  # the first traceback's mmsearch frames, outermost first


class ErrorLog:
    """Thread-safe tally of failures, grouped by where, type and message.

    Numbers (thread ids, counts, line numbers) are masked in the grouping key so that the same
    failure from different threads lands in one group; the first traceback of each is kept.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.kinds: dict[tuple[str, str, str], ErrorKind] = {}

    def add(
        self, where: str, type_name: str, message: str, details: str = "", chain: str = ""
    ) -> None:
        key = (where, type_name, re.sub(r"\d+", "N", message)[:300])
        with self._lock:
            kind = self.kinds.get(key)
            if kind is None:
                kind = self.kinds[key] = ErrorKind(where, type_name, message, 0, details, chain)
            kind.count += 1

    def exception(self, where: str, exc: BaseException) -> None:
        """Record the exception being handled, with its traceback."""
        self.add(where, type(exc).__name__, str(exc), traceback.format_exc(), mmsearch_frames(exc))

    def total(self, prefix: str = "") -> int:
        with self._lock:
            return sum(k.count for k in self.kinds.values() if k.where.startswith(prefix))


# -- the threads sharing one Library ----------------------------------------------------------


def duplicate_paths(hits: list[Any]) -> list[str]:
    """Paths that occur more than once in one result list."""
    return [p for p, c in Counter(h.path for h in hits).items() if c > 1]


class SearchWorker(threading.Thread):
    """Loops over text search, image search and stats on the shared Library until stopped."""

    def __init__(
        self,
        index: int,
        lib: Library,
        images: list[Path],
        errors: ErrorLog,
        stop: threading.Event,
        pause: float,
    ) -> None:
        super().__init__(name=f"searcher-{index}", daemon=True)
        self.lib = lib
        self.images = images
        self.errors = errors
        self.stop = stop
        self.pause = pause
        self.rng = random.Random(index)  # reproducible choice of example images per thread
        self.calls: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.duplicates = 0

    def _ops(self) -> list[tuple[str, Callable[[], Any]]]:
        return [
            ("search_text", lambda: self.lib.search("red")),
            ("search_image", lambda: self.lib.search(image=self.rng.choice(self.images))),
            ("stats", self.lib.stats),
        ]

    def run(self) -> None:
        ops = self._ops()
        while not self.stop.is_set():
            for name, call in ops:
                self.calls[name] += 1
                try:
                    result = call()
                except Exception as exc:  # noqa: BLE001 - every exception is what this test measures
                    self.failed[name] += 1
                    self.errors.exception(f"thread:{name}", exc)
                else:
                    if isinstance(result, list) and duplicate_paths(result):
                        self.duplicates += 1
                        self.errors.add(
                            f"thread:{name}",
                            "DuplicatePaths",
                            f"duplicates in results: {duplicate_paths(result)[:3]}",
                        )
                # A short pause keeps a thread that fails instantly from spinning a core.
                self.stop.wait(self.pause)


# -- the writer processes ---------------------------------------------------------------------


def mmsearch_env(home: Path) -> dict[str, str]:
    """Environment for child processes: an isolated mmsearch home, no inherited index/config."""
    env = {k: v for k, v in os.environ.items() if k not in ("MMSEARCH_INDEX", "MMSEARCH_CONFIG")}
    env["MMSEARCH_HOME"] = str(home)
    return env


class Indexer:
    """`mmsearch index MEDIA --index INDEX` as a child process, its output kept in log files."""

    def __init__(
        self,
        exe: str,
        media_root: Path,
        index_dir: Path,
        logs: Path,
        env: dict[str, str],
        batch_size: int,
    ) -> None:
        self.out_path = logs / "indexer.out"
        self.err_path = logs / "indexer.err"
        self.started = time.monotonic()
        self.seconds: float | None = None
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.proc = subprocess.Popen(
                [
                    exe,
                    "index",
                    str(media_root),
                    "--index",
                    str(index_dir),
                    "--batch-size",
                    str(batch_size),
                ],
                stdout=out,
                stderr=err,
                env=env,
            )

    def poll(self) -> int | None:
        rc = self.proc.poll()
        if rc is not None and self.seconds is None:
            self.seconds = time.monotonic() - self.started
        return rc

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def output(self) -> str:
        return self.out_path.read_text() + self.err_path.read_text()


def write_lock_held(index_dir: Path) -> bool | None:
    """Whether a process holds a flock on the index's write.lock, from /proc/locks (None where
    that cannot be read). Looking must not take the lock itself: the indexer could then find
    the index busy because of the test."""
    try:
        inode = (index_dir / "write.lock").stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    pattern = re.compile(rf":{inode}\s")
    return any("FLOCK" in line and pattern.search(line) for line in lines)


class Remover(threading.Thread):
    """Runs `mmsearch remove FOLDER --index INDEX` processes until every extra folder is gone.

    A clean "busy" answer (another process holds the write lock) is expected while the indexer
    runs and is retried. "not in the index" is retried too as long as the indexer has not
    finished (it may not have reached that folder yet); after that it is an error. Any other
    non-zero exit, a timeout, or a "Traceback" in the output is an error.
    """

    def __init__(
        self,
        exe: str,
        folders: list[Path],
        index_dir: Path,
        env: dict[str, str],
        indexer_done: threading.Event,
        errors: ErrorLog,
        deadline: float,
        pause: float,
    ) -> None:
        super().__init__(name="remover", daemon=True)
        self.exe = exe
        self.pending = list(folders)
        self.index_dir = index_dir
        self.env = env
        self.indexer_done = indexer_done
        self.errors = errors
        self.deadline = deadline
        self.pause = pause
        self.calls = 0
        self.busy = 0
        self.not_yet = 0
        self.failed = 0
        self.removed: list[Path] = []
        self.outputs: list[str] = []  # successful calls' output, e.g. "Removed 10 item(s)."
        self.lock_seen = "not yet"  # whether the removes started while the indexer wrote

    def _call(self, folder: Path) -> str:
        """One remove process; returns "ok", "retry" or "error"."""
        indexer_finished = self.indexer_done.is_set()  # before the call: the state it could see
        self.calls += 1
        try:
            run = subprocess.run(
                [self.exe, "remove", str(folder), "--index", str(self.index_dir)],
                capture_output=True,
                text=True,
                env=self.env,
                timeout=120,
                check=False,  # the exit code is classified below
            )
        except subprocess.TimeoutExpired:
            self.errors.add("remover", "Timeout", f"mmsearch remove {folder} ran over 120 s")
            return "error"
        output = run.stdout + run.stderr
        lowered = output.lower()
        if "Traceback" in output:
            last = output.strip().splitlines()[-1]
            self.errors.add("remover", "Traceback", last, output)
            return "error"
        if run.returncode == 0:
            self.outputs.append(output.strip())
            return "ok"
        if any(marker in lowered for marker in BUSY_MARKERS):
            self.busy += 1
            return "retry"
        if NOT_YET_MARKER in lowered and not indexer_finished:
            self.not_yet += 1
            return "retry"
        self.errors.add("remover", f"exit {run.returncode}", output.strip()[-300:], output)
        return "error"

    def _wait_for_writer(self, limit: float = 60) -> None:
        """Start removing only once the indexer holds the write lock, so the removes really
        overlap the indexing run (a remove that wins the race would be undone by the run)."""
        started = time.monotonic()
        while not self.indexer_done.is_set() and time.monotonic() - started < limit:
            held = write_lock_held(self.index_dir)
            if held is None:
                self.lock_seen = "unknown (/proc/locks unreadable)"
                return
            if held:
                self.lock_seen = (
                    f"yes, {time.monotonic() - started:.1f} s after the indexer started"
                )
                return
            time.sleep(0.05)
        self.lock_seen = "no (the indexer finished or the wait timed out first)"

    def run(self) -> None:
        self._wait_for_writer()
        while self.pending and time.monotonic() < self.deadline:
            folder = self.pending[0]
            outcome = self._call(folder)
            if outcome == "ok":
                self.removed.append(self.pending.pop(0))
                continue
            if outcome == "error":
                self.failed += 1
            time.sleep(self.pause)
        for folder in self.pending:
            self.errors.add("remover", "NotRemoved", f"{folder} was never removed (time limit)")


# -- progress ---------------------------------------------------------------------------------


def catalog_item_count(index_dir: Path) -> int | None:
    """Items in the catalog, read with a separate read-only SQLite connection so that progress
    reporting does not go through (and disturb) the Library under test."""
    try:
        uri = f"file:{index_dir / 'catalog.db'}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=1) as db:
            return int(db.execute("SELECT count(*) FROM items").fetchone()[0])
    except sqlite3.Error:
        return None


def progress_line(
    t0: float,
    indexer: Indexer,
    index_dir: Path,
    workers: list[SearchWorker],
    remover: Remover,
    errors: ErrorLog,
) -> str:
    """One line of progress: the writers' state, the catalog's size, calls and errors so far."""
    rc = indexer.poll()
    state = "running" if rc is None else f"exit {rc}"
    calls = sum(sum(w.calls.values()) for w in workers)
    return (
        f"[{time.monotonic() - t0:6.1f} s] indexer {state}, catalog items "
        f"{catalog_item_count(index_dir)}; threads {calls} calls, "
        f"{errors.total('thread')} errors; remover {remover.calls} calls, {remover.busy} busy, "
        f"{len(remover.removed)}/{len(remover.removed) + len(remover.pending)} removed, "
        f"{remover.failed} errors"
    )


# -- the concurrent phase ---------------------------------------------------------------------


@dataclass
class PhaseResult:
    """What the concurrent phase left behind for the summary."""

    workers: list[SearchWorker]
    remover: Remover
    indexer: Indexer
    indexer_output: str
    seconds: float


def run_concurrent_phase(
    lib: Library,
    media: Media,
    index_dir: Path,
    exe: str,
    env: dict[str, str],
    logs: Path,
    args: argparse.Namespace,
    errors: ErrorLog,
) -> PhaseResult:
    """Start the search threads, the indexer and the remover; wait for the writers (bounded),
    printing progress; let the threads read the final state a little longer, then stop them."""
    t0 = time.monotonic()
    stop = threading.Event()
    workers = [
        SearchWorker(i, lib, media.everything(), errors, stop, args.pause)
        for i in range(args.threads)
    ]
    for w in workers:
        w.start()
    indexer = Indexer(exe, media.root, index_dir, logs, env, args.index_batch_size)
    indexer_done = threading.Event()
    remover = Remover(
        exe,
        list(media.extras),
        index_dir,
        env,
        indexer_done,
        errors,
        deadline=t0 + args.index_timeout + args.remove_grace,
        pause=args.remove_pause,
    )
    remover.start()

    next_report = t0 + args.progress_every
    while True:
        if indexer.poll() is not None:
            indexer_done.set()
        elif time.monotonic() - t0 > args.index_timeout:
            errors.add("indexer", "Timeout", f"mmsearch index ran over {args.index_timeout} s")
            indexer.kill()
            indexer_done.set()
        if indexer_done.is_set() and not remover.is_alive():
            break
        if time.monotonic() >= next_report:
            print(progress_line(t0, indexer, index_dir, workers, remover, errors), flush=True)
            next_report += args.progress_every
        time.sleep(0.2)
    # The threads go on briefly after the last write, so they also read the finished index
    # (and whatever refresh the last removal calls for) with no writer around.
    time.sleep(args.linger)
    print(progress_line(t0, indexer, index_dir, workers, remover, errors), flush=True)

    stop.set()
    for w in workers:
        w.join(timeout=60)
        if w.is_alive():  # a call hung: that is a failure, but the checks should still run
            errors.add(f"thread:{w.name}", "Hung", f"{w.name} did not stop within 60 s")

    output = indexer.output()
    if indexer.proc.returncode != 0:
        errors.add("indexer", f"exit {indexer.proc.returncode}", output.strip()[-300:], output)
    elif "Traceback" in output:
        errors.add("indexer", "Traceback", output.strip().splitlines()[-1], output)
    return PhaseResult(workers, remover, indexer, output.strip(), time.monotonic() - t0)


# -- the final checks -------------------------------------------------------------------------


@dataclass
class Check:
    """What one Library answered after the writers finished."""

    label: str
    indexed_images: int | None = None
    expected_images: int = 0
    checked: int = 0
    self_first: int = 0
    misses: list[tuple[str, str | None]] = field(default_factory=list)  # (path, top hit)
    duplicates: int = 0
    removed_still_found: list[str] = field(default_factory=list)
    exceptions: int = 0

    @property
    def rate(self) -> float:
        return self.self_first / self.checked if self.checked else 0.0

    def passed(self) -> bool:
        return (
            self.exceptions == 0
            and self.checked == self.expected_images
            and self.self_first == self.checked
            and self.duplicates == 0
            and not self.removed_still_found
            and self.indexed_images == self.expected_images
        )


def check_library(lib: Library, label: str, media: Media, errors: ErrorLog) -> Check:
    """Self-first for every kept image, absence of every removed one, no duplicate paths."""
    kept = media.kept()
    removed = {str(p) for p in media.removed()}
    check = Check(label, expected_images=len(kept))
    where = f"check:{label}"

    def guarded(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - a check that raises is a failure, not a crash of the test
            check.exceptions += 1
            errors.exception(where, exc)
            return None

    stats = guarded(lib.stats)
    if stats is not None:
        check.indexed_images = stats.items.get("image", 0)

    for path in kept:
        hits = guarded(lambda p=path: lib.search(image=p, k=1))
        check.checked += 1
        if hits and hits[0].path == str(path):
            check.self_first += 1
        else:
            check.misses.append((str(path), hits[0].path if hits else None))

    for path in media.removed():
        hits = guarded(lambda p=path: lib.search(image=p, k=1))
        if hits and hits[0].path == str(path):
            check.removed_still_found.append(str(path))

    # Long lists are where stale or doubled vectors show up as a path returned twice.
    examples = [kept[0], kept[len(kept) // 2], kept[-1]]
    queries: list[Callable[[], Any]] = [lambda: lib.search("red", k=10_000)]
    queries += [lambda p=p: lib.search(image=p, k=10_000) for p in examples]
    queries += [lambda: lib.search("red", image=examples[0], k=10_000)]
    for query in queries:
        hits = guarded(query) or []
        check.duplicates += len(duplicate_paths(hits))
        check.removed_still_found += [h.path for h in hits if h.path in removed]
    check.removed_still_found = sorted(set(check.removed_still_found))
    return check


# -- reporting --------------------------------------------------------------------------------


def trimmed(text: str, lines: int) -> str:
    """The last lines of a traceback or a process's output, indented."""
    parts = text.strip().splitlines()
    return "\n".join(("      " + p) for p in parts[-lines:])


def print_errors(errors: ErrorLog, tb_lines: int) -> None:
    """Every kind of failure, most frequent first, with where its first occurrence came from."""
    print(f"errors: {errors.total()} in {len(errors.kinds)} kinds")
    for kind in sorted(errors.kinds.values(), key=lambda k: -k.count):
        print(f"  [{kind.count}x] {kind.where}: {kind.type}: {kind.message[:200]}")
        if kind.chain:
            print(f"      at {kind.chain}")
        elif kind.first_traceback:
            print(trimmed(kind.first_traceback, tb_lines))


def print_summary(
    phase: PhaseResult,
    checks: list[Check],
    errors: ErrorLog,
    media: Media,
    wall: float,
    tb_lines: int,
) -> None:
    print("\n=== summary ===")
    print(
        f"images: {len(media.images)} + {len(media.seed_images)} seed kept, "
        f"{len(media.removed())} in {len(media.extras)} folders to remove"
    )
    idx = phase.indexer
    print(
        f"indexer: exit {idx.proc.returncode} after {idx.seconds or 0:.1f} s: "
        f"{phase.indexer_output.splitlines()[-1] if phase.indexer_output else '(no output)'}"
    )
    r = phase.remover
    print(
        f"remover: {r.calls} calls, {r.busy} busy retries, {r.not_yet} not-yet-indexed retries, "
        f"{r.failed} errors, removed {len(r.removed)}/{len(media.extras)} folders "
        f"({'; '.join(r.outputs) or '-'}); indexer's write lock seen first: {r.lock_seen}"
    )
    print(f"threads (concurrent phase {phase.seconds:.1f} s):")
    for w in phase.workers:
        ops = ", ".join(f"{name} {n} ({w.failed[name]} failed)" for name, n in w.calls.items())
        print(f"  {w.name}: {ops}; duplicate lists {w.duplicates}")
    for c in checks:
        print(
            f"check {c.label}: stats images {c.indexed_images} (expected {c.expected_images}); "
            f"self-first {c.self_first}/{c.checked} = {100 * c.rate:.1f} %; "
            f"duplicates {c.duplicates}; removed still found {len(c.removed_still_found)}; "
            f"exceptions {c.exceptions}"
        )
        for path, top in c.misses[:3]:
            print(f"    miss: {path} -> top hit {top}")
        for path in c.removed_still_found[:3]:
            print(f"    removed but found: {path}")
    print_errors(errors, tb_lines)
    print(f"wall time: {wall:.1f} s")


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; only --images, --threads, --model, --workdir and --keep are everyday."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=2000, help="images the indexer adds (N)")
    p.add_argument("--threads", type=int, default=4, help="threads sharing one Library")
    p.add_argument("--model", default="hash-test", help="model of the new index")
    p.add_argument(
        "--workdir", type=Path, help="empty or new folder to work in (default: a temp dir)"
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the temp work dir (index, media, logs)"
    )
    p.add_argument("--mmsearch", help="mmsearch executable (default: the one beside this Python)")
    p.add_argument("--index-timeout", type=float, default=900, help="seconds the indexer may take")
    # Small batches mean many commits, so readers see the index change many times mid-run.
    p.add_argument("--index-batch-size", type=int, default=8, help="the indexer's --batch-size")
    p.add_argument(
        "--remove-grace",
        type=float,
        default=120,
        help="seconds the remover may go on after the indexer's time limit",
    )
    p.add_argument("--linger", type=float, default=2, help="seconds threads go on after writers")
    p.add_argument("--pause", type=float, default=0.01, help="seconds between a thread's calls")
    p.add_argument("--remove-pause", type=float, default=0.5, help="seconds between remove retries")
    p.add_argument("--progress-every", type=float, default=5, help="seconds between progress lines")
    p.add_argument("--traceback-lines", type=int, default=8, help="traceback lines shown per kind")
    p.add_argument("--seed", type=int, default=0, help="random seed of the generated images")
    return p.parse_args(argv)


def find_mmsearch(explicit: str | None) -> str:
    """The CLI of this very environment, so the child processes run the code under test."""
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "mmsearch"
    found = str(beside) if beside.is_file() else shutil.which("mmsearch")
    if not found:
        sys.exit("error: no mmsearch executable beside this Python or on PATH (use --mmsearch)")
    return found


def prepare_workdir(requested: Path | None) -> tuple[Path, bool]:
    """The work dir (absolute, symlinks kept as mmsearch keeps them) and whether we created it."""
    if requested is None:
        return Path(tempfile.mkdtemp(prefix="mmsearch-stress-")).absolute(), True
    requested = requested.expanduser().absolute()
    if requested.exists() and any(requested.iterdir()):
        sys.exit(f"error: --workdir {requested} is not empty")
    requested.mkdir(parents=True, exist_ok=True)
    return requested, False


def main(argv: list[str] | None = None) -> int:
    """Make the media, run the concurrent phase, check the index, print the summary.

    Returns 0 when every check passed, 1 when one failed, 2 when the index could not be set up.
    """
    args = parse_args(argv)
    exe = find_mmsearch(args.mmsearch)
    started = time.monotonic()
    workdir, created = prepare_workdir(args.workdir)
    index_dir, logs = workdir / "index", workdir / "logs"
    logs.mkdir()
    env = mmsearch_env(workdir / "home")
    os.environ.update(MMSEARCH_HOME=env["MMSEARCH_HOME"])  # this process's Settings() too
    for name in ("MMSEARCH_INDEX", "MMSEARCH_CONFIG"):
        os.environ.pop(name, None)
    print(f"work dir {workdir}; mmsearch {exe}; package {Path(mmsearch.__file__).parent}")

    errors = ErrorLog()
    try:
        t = time.monotonic()
        media = make_media(workdir, args.images, args.seed)
        print(f"made {len(media.everything())} images in {time.monotonic() - t:.1f} s")

        # The shared Library is opened, and the index created, in the main thread: the threads
        # then use an object they did not create, which is the guarantee under test.
        try:
            shared = Library.open(index_dir, model=args.model)
            report = shared.index([media.seed])
        except Exception as exc:  # noqa: BLE001 - nothing concurrent has run yet: report and stop
            errors.exception("setup", exc)
            print_errors(errors, args.traceback_lines)
            print("RESULT: FAIL (could not create and seed the index)")
            return 2
        print(f"seed indexed: {report.added} added")

        phase = run_concurrent_phase(shared, media, index_dir, exe, env, logs, args, errors)

        with Library.open(index_dir, create=False) as fresh:
            checks = [check_library(fresh, "fresh", media, errors)]
        checks.append(check_library(shared, "shared", media, errors))
        shared.close()

        print_summary(
            phase, checks, errors, media, time.monotonic() - started, args.traceback_lines
        )
        ok = errors.total() == 0 and all(c.passed() for c in checks)
        print("RESULT:", "PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        if created and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")


if __name__ == "__main__":
    sys.exit(main())
