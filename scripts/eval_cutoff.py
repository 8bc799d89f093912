"""What the relevance cut-off keeps: for caption -> image search on captioned photos, the share of
correct matches (a caption's own image) and of wrong matches (every other image) whose score
passes the model's default cut-off, and at a few other `--min-score` values.

A good cut-off keeps most correct matches and drops most wrong ones; "never returns everything"
is the wrong-match share staying well under 1. This is end to end (keyword evidence and the
reranker included); `scripts/calibrate.py` shows the same per space and kind of vector.

Usage:
    .venv/bin/python scripts/eval_cutoff.py [--data ../shared/data] [--sets coco_mini,flickr8k_1k]
        [--work indexes/eval] [--model offline-default]

Indexes each set with `mmsearch index` (reused when --work already holds it: only changes are
encoded), then scores every caption against every image with `Library.search` (k = all,
min_score = -1, so nothing is cut before counting).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import read_manifest

from mmsearch import Library
from mmsearch.encoders.registry import default_cutoffs

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
"""On the calibrated 0-1 scale (`mmsearch/query/calibration.py`)."""


def captions(folder: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for row in read_manifest(folder / "manifest.csv"):
        out[str((folder / row["path"]).resolve())].append(row["caption"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--sets", default="coco_mini,flickr8k_1k")
    parser.add_argument("--work", type=Path, default=Path("indexes/eval"))
    parser.add_argument("--model", default="offline-default")
    args = parser.parse_args()
    print("| set | captions | cut-off | correct kept | wrong kept | correct kept / wrong kept |")
    print("|---|---|---|---|---|---|")
    for name in args.sets.split(","):
        folder = args.data / name
        index = args.work / f"cutoff-{name}-{args.model.replace(':', '_').replace('/', '_')}"
        subprocess.run(
            [sys.executable, "-m", "mmsearch", "index", str(folder), "--index", str(index),
             "--model", args.model],
            check=True, stdout=subprocess.DEVNULL,
        )
        wanted = captions(folder)
        with Library.open(index, create=False, readonly=True) as lib:
            default = default_cutoffs(lib.spec).get("semantic", 0.0)
            total = lib.stats().items.get("image", 0)
            right: list[float] = []
            wrong: list[float] = []
            for path, texts in wanted.items():
                for text in texts:
                    for hit in lib.search(f'"{text}"' if '"' not in text else text, k=total,
                                          min_score=-1, kinds=["image"]):
                        (right if hit.path == path else wrong).append(hit.score)
        for cut in sorted({default, *THRESHOLDS}):
            kept_right = sum(s >= cut for s in right) / len(right)
            kept_wrong = sum(s >= cut for s in wrong) / len(wrong)
            ratio = kept_right / kept_wrong if kept_wrong else float("inf")
            mark = " (default)" if cut == default else ""
            print(f"| {name} | {len(right)} | {cut:.2f}{mark} | {kept_right:.3f} | {kept_wrong:.3f} | {ratio:.1f} |")


if __name__ == "__main__":
    main()
