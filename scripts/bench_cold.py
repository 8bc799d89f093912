"""Cold searches on the offline default: this tree against a git revision, interleaved.

Each search is a whole `python -m mmsearch search ...` process (wall time, CPU seconds and peak
memory from wait4), run alternately with the code of this working tree and with the code of
`--baseline` (checked out into a temporary git worktree), on one index of the sample media
(made by scripts/make_samples.py, indexed once by this tree). Both trees use the same venv,
the same model cache and the same index, and have their modules compiled first, so the ratios
compare only the code.

With --phases, the text search is also timed phase by phase (CPU ms, medians of the rounds,
both trees): what it imports, reads and runs, and what the rest of the process costs.

Usage:
    .venv/bin/python scripts/bench_cold.py [--baseline da824d2] [--rounds 5] [--phases]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import baseline_tree, measured, print_phase_table, run  # scripts are not a package

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "indexes" / "samples"


def searches(probe_dir: Path) -> dict[str, list[str]]:
    """Search arguments by name: a text, and examples that are not in the index."""
    from PIL import Image

    photo = probe_dir / "cat-crop.jpg"
    with Image.open(SAMPLES / "photos" / "chelsea-the-cat.jpg") as image:
        w, h = image.size
        image.crop((w // 8, h // 8, w, h)).save(photo, quality=80)
    sound = probe_dir / "rain-copy.wav"
    subprocess.run(["sox", str(SAMPLES / "sounds" / "rain-on-the-roof.ogg"), str(sound), "trim", "0", "3"],
                   check=True)
    return {
        "text": ["a cup of coffee"],
        "example photo": ["--image", str(photo)],
        "example sound": ["--audio", str(sound)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="da824d2", help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--phases", action="store_true",
                        help="also time the text search phase by phase in both trees")
    args = parser.parse_args()
    env = {**os.environ, "MMSEARCH_CACHE_DIR": os.environ.get("MMSEARCH_CACHE_DIR", str(ROOT / "indexes" / "models"))}
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_samples.py"), str(SAMPLES)], check=True,
                   stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        work = Path(tmp)
        with baseline_tree(args.baseline, work / "baseline") as baseline:
            index = work / "index"
            run([sys.executable, "-m", "mmsearch", "index", str(SAMPLES), "--index", str(index)], env)
            trees = {"this tree": ROOT, f"baseline {args.baseline}": baseline}
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "mmsearch")],
                           check=True, stdout=subprocess.DEVNULL)
            queries = searches(work)
            samples: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
            for round_no in range(args.rounds + 1):  # round 0 warms caches and is not counted
                for what, query in queries.items():
                    order = list(trees.items())
                    for name, tree in order if round_no % 2 else order[::-1]:
                        cmd = measured([sys.executable, "-m", "mmsearch", "search", *query,
                                        "--index", str(index), "-k", "3", "--min-score", "-1"])
                        # `-m` puts the working folder first on sys.path: run in the tree.
                        wall, peak, _, cpu = run(cmd, {**env, "PYTHONPATH": str(tree)}, cwd=tree)
                        if round_no:
                            samples.setdefault((what, name), []).append((wall, cpu, peak))
            print(f"== cold `mmsearch search` on the offline default, medians of {args.rounds} "
                  "interleaved rounds (the machine may be shared: compare ratios)")
            for what in queries:
                line = []
                for name in trees:
                    s = samples[(what, name)]
                    line.append(f"{name}: {statistics.median(x[0] for x in s):.2f} s wall, "
                                f"{statistics.median(x[1] for x in s):.2f} s CPU, {max(x[2] for x in s):.0f} MB")
                new, old = (samples[(what, name)] for name in trees)
                ratio = statistics.median(x[0] for x in new) / statistics.median(x[0] for x in old)
                cpu = statistics.median(x[1] for x in new) / statistics.median(x[1] for x in old)
                print(f"{what:<14} " + "; ".join(line) + f"; this/baseline: {ratio:.2f}x time, {cpu:.2f}x CPU")
            if args.phases:
                print_phase_table(trees, index, queries["text"][0], env, args.rounds)


if __name__ == "__main__":
    main()
