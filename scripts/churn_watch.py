"""Churn check for live folders: after heavy file churn under a running watcher, the index
must equal a fresh full index of the same folders.

A watcher (`mmsearch watch`, its own process) follows two folders while this script creates
--files text notes (plain writes, atomic saves through a hidden temp file, downloads written as
`.part` then renamed, and copies still growing while others land), then modifies, renames,
moves between folders and between the two roots, and deletes a share of them, and moves and
renames whole folders. Once the watcher is quiet, a fresh index of the same folders is built and
the two are compared: the same paths, the same content hash per path, the same vectors for the
same content, no path indexed twice or left over (duplicates), none missing, and `check()` clean.

With --kill, the watcher is killed with SIGKILL half-way through the churn and started again
after it, so it has to catch up with what happened while it was down.

Prints one line per run and exits non-zero when the two indexes differ.

Usage:
    .venv/bin/python scripts/churn_watch.py [--files 10000] [--model offline-default] [--kill]
        [--seed 1] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from mmsearch import Library
from mmsearch.store.catalog import Catalog

WORDS = [
    "apple", "river", "stone", "garden", "bread", "lamp", "window", "cloud", "music", "paper",
    "train", "forest", "coffee", "letter", "mountain", "pencil", "candle", "harbour", "violin",
    "tomato", "meadow", "rocket", "glacier", "lantern", "orchard",
]
QUIET_SECONDS = 6.0
PAUSE = 2.5  # past the watcher's settle time (1 s), so it is busy when the next phase starts


class Churn:
    """Makes the file operations, deterministically from a seed."""

    def __init__(self, work: Path, files: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.roots = [work / "r1", work / "r2"]
        self.folders = [self.roots[0] / n for n in ("a", "b", "c")] + [self.roots[1] / n for n in ("d", "e")]
        for folder in self.folders:
            folder.mkdir(parents=True)
        self.files = files
        self.live: list[Path] = []
        self.counter = 0
        self.growers: list[threading.Thread] = []

    def text(self) -> str:
        self.counter += 1
        words = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(5, 30)))
        return f"note {self.counter}: {words}\n"

    def new_path(self) -> Path:
        self.counter += 1
        return self.rng.choice(self.folders) / f"n{self.counter:06d}.{self.rng.choice(['txt', 'md'])}"

    def create(self, n: int) -> None:
        for _ in range(n):
            path, roll = self.new_path(), self.rng.random()
            if roll < 0.7:
                path.write_text(self.text())
            elif roll < 0.85:  # an editor's atomic save: hidden temp file, then rename
                temp = path.with_name(f".{path.name}.tmp")
                temp.write_text(self.text())
                os.replace(temp, path)
            elif roll < 0.95:  # a download: written as .part, renamed when complete
                part = path.with_name(path.name + ".part")
                part.write_text(self.text())
                os.replace(part, path)
            else:  # a copy still growing while the rest goes on
                grower = threading.Thread(target=self._grow, args=(path, self.text()))
                grower.start()
                self.growers.append(grower)
            self.live.append(path)

    def _grow(self, path: Path, text: str) -> None:
        with open(path, "w") as f:
            for start in range(0, len(text), max(1, len(text) // 4)):
                f.write(text[start : start + max(1, len(text) // 4)])
                f.flush()
                time.sleep(0.3)

    def wait_growers(self) -> None:
        for grower in self.growers:
            grower.join()
        self.growers = []

    def churn(self, share: float) -> None:
        """Modify, rename, move and delete about `share` of the live files each."""
        self.wait_growers()
        self.rng.shuffle(self.live)
        k = int(len(self.live) * share)
        modify, rename, move, delete = (self.live[i * k : (i + 1) * k] for i in range(4))
        rest = self.live[4 * k :]
        for path in modify:
            if self.rng.random() < 0.5:
                path.write_text(self.text())
            else:
                temp = path.with_name(f".{path.name}.swp")
                temp.write_text(self.text())
                os.replace(temp, path)
        renamed = []
        for path in rename:
            target = path.with_name("r" + path.name)
            os.rename(path, target)
            renamed.append(target)
        moved = []
        for path in move:
            folder = self.rng.choice([f for f in self.folders if f != path.parent])
            target = folder / path.name
            os.rename(path, target)
            moved.append(target)
        for path in delete:
            path.unlink()
        self.live = modify + renamed + moved + rest

    def move_folders(self) -> None:
        """A folder renamed in place, and one moved from one root to the other."""
        old, new = self.folders[1], self.folders[1].with_name("b-renamed")
        os.rename(old, new)
        out, into = self.folders[4], self.roots[0] / "from-r2"
        os.rename(out, into)
        self.folders[1], self.folders[4] = new, into
        self.live = [self._moved(p, old, new) for p in self.live]
        self.live = [self._moved(p, out, into) for p in self.live]

    @staticmethod
    def _moved(path: Path, old: Path, new: Path) -> Path:
        return new / path.relative_to(old) if path.is_relative_to(old) else path


def start_watcher(churn: Churn, index: Path, model: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "mmsearch", "watch", *map(str, churn.roots), "--index", str(index),
           "--model", model, "--json"]
    with open(log, "ab") as out, open(log.with_suffix(".err"), "ab") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
    lines = len(log.read_text().splitlines()) if log.exists() else 0
    deadline = time.monotonic() + 600
    while len(log.read_text().splitlines()) <= lines:  # the catch-up index is done
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the watcher did not start: {log.with_suffix('.err').read_text()[-2000:]}")
        time.sleep(0.2)
    time.sleep(0.5)
    return proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(log: Path, pid: int) -> None:
    """Until the watcher has written no batch and used (almost) no CPU for QUIET_SECONDS: a
    long batch writes its line only when it is done, so silence alone is not enough."""
    size, cpu, since = -1, cpu_seconds(pid), time.monotonic()
    while time.monotonic() - since < QUIET_SECONDS:
        time.sleep(1.0)
        now, used = log.stat().st_size, cpu_seconds(pid)
        if now != size or used - cpu > 0.05:
            since = time.monotonic()
        size, cpu = now, used


def snapshot(index: Path) -> dict[str, tuple[str, str | None, str, list[bytes]]]:
    """path -> (kind, hash, status, vector bytes per space) of every indexed item."""
    catalog = Catalog(index / "catalog.db", readonly=True)
    try:
        rows = {p: r for root in catalog.roots() for p, r in catalog.items_under(root).items()}
        ids = [r.id for r in rows.values()]
        vectors = catalog.item_vectors(ids, "semantic")
        return {
            p: (r.kind, r.hash, r.status, [np.asarray(vectors[r.id], np.float32).tobytes()] if r.id in vectors else [])
            for p, r in rows.items()
        }
    finally:
        catalog.close()


def compare(watched: Path, fresh: Path, churn: Churn) -> dict[str, int]:
    a, b = snapshot(watched), snapshot(fresh)
    on_disk = {str(p) for p in churn.live}
    by_hash = {h: v for _, h, _, v in b.values()}

    def same(x: list[bytes], y: list[bytes]) -> bool:
        """Equal up to float rounding (a batch of other lengths pads differently)."""
        if len(x) != len(y):
            return False
        return all(np.allclose(np.frombuffer(u, np.float32), np.frombuffer(v, np.float32), atol=1e-5)
                   for u, v in zip(x, y))

    return {
        "items": len(a),
        "fresh_items": len(b),
        "on_disk": len(on_disk),
        "missing": len(set(b) - set(a)),
        "extra": len(set(a) - set(b)),
        "not_on_disk": len(set(a) - on_disk),
        "other_hash": sum(1 for p in set(a) & set(b) if a[p][1] != b[p][1]),
        "other_vectors": sum(1 for p, (_, h, _, v) in a.items() if h in by_hash and not same(by_hash[h], v)),
        "errors": sum(1 for _, _, s, _ in a.values() if s != "ok"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--model", default="offline-default")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the watcher half-way, then restart it")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="churn-watch-"))
    env = {**os.environ, "MMSEARCH_HOME": str(work / "home")}
    index, log = work / "index", work / "watch.jsonl"
    churn = Churn(work, args.files, args.seed)
    churn.create(10)  # something to index before watching starts
    started = time.monotonic()
    proc = start_watcher(churn, index, args.model, log, env)
    try:
        half = args.files // 2
        churn.create(half - 10)
        time.sleep(PAUSE)  # let the watcher start on them: the rest lands while it works
        churn.churn(0.05)
        if args.kill:
            time.sleep(PAUSE)  # mid-ingest
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        churn.create(args.files - half)
        time.sleep(PAUSE)
        churn.move_folders()
        churn.churn(0.1)
        churn.wait_growers()
        if args.kill:
            proc = start_watcher(churn, index, args.model, log, env)
        wait_quiet(log, proc.pid)
        elapsed = time.monotonic() - started - QUIET_SECONDS
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
    with Library.open(index, create=False, readonly=True) as lib:
        problems = lib.check()
    fresh = work / "fresh"
    subprocess.run([sys.executable, "-m", "mmsearch", "index", *map(str, churn.roots), "--index", str(fresh),
                    "--model", args.model, "--json"], check=True, env=env, stdout=subprocess.DEVNULL)
    result = compare(index, fresh, churn)
    batches = len(log.read_text().splitlines())
    ok = (
        result["missing"] == result["extra"] == result["not_on_disk"] == 0
        and result["other_hash"] == result["other_vectors"] == result["errors"] == 0
        and result["items"] == result["on_disk"] and not problems
    )
    mode = "killed -9 half-way and restarted" if args.kill else "watcher ran throughout"
    print(
        f"churn {args.files} files ({mode}, {args.model}): {result['items']} items vs "
        f"{result['fresh_items']} in a fresh index ({result['on_disk']} files on disk); missing "
        f"{result['missing']}, duplicates/extra {result['extra']}, left over {result['not_on_disk']}, "
        f"other hash {result['other_hash']}, other vectors {result['other_vectors']}, errors "
        f"{result['errors']}, check() problems {len(problems)}; {batches} watcher updates, "
        f"churn + catch-up {elapsed:.1f} s -> {'SAME' if ok else 'DIFFERENT'}"
    )
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
