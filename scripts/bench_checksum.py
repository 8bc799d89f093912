"""What checking a vector file at every load costs: xxh3-128 (what `SpaceSet` checks) against
sha256 (what it checked only when size or mtime had changed) and against reading the file alone,
on a file of random bytes the size of a large index, measured in one run.

Usage:
    .venv/bin/python scripts/bench_checksum.py [--mb 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import timed  # scripts are not a package

from mmsearch.store.manifest import file_sha256, file_xxh3


def read_only(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(8 << 20):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-checksum-") as tmp:
        path = Path(tmp) / "vectors.bin"
        with path.open("wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1 << 20))
        read_only(path)  # in the page cache, as a file FAISS has just read
        seconds: dict[str, list[float]] = {"read": [], "xxh3": [], "sha256": []}
        for _ in range(args.rounds):  # interleaved, so a busy moment hits every method alike
            seconds["read"].append(timed(lambda: read_only(path))[1])
            seconds["xxh3"].append(timed(lambda: file_xxh3(path))[1])
            seconds["sha256"].append(timed(lambda: file_sha256(path))[1])
    med = {name: statistics.median(values) for name, values in seconds.items()}
    for name, value in med.items():
        print(f"{name:<7} {value * 1000:7.0f} ms per {args.mb} MB  ({value / med['read']:.2f}x reading it)")
    print(f"xxh3 costs {(med['xxh3'] - med['read']) * 1000:.0f} ms beyond the read; "
          f"sha256 / xxh3: {med['sha256'] / med['xxh3']:.1f}x")


if __name__ == "__main__":
    main()
