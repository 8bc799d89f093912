"""Fusing a text with an example: calibrated score fusion against reciprocal-rank fusion.

A query such as "the sound of a dog" plus an example bark searches two spaces (`semantic` and
`acoustic`); their lists are fused either by the weighted mean of calibrated scores (the
default, `mmsearch/query/fusion.py`) or by weighted reciprocal-rank fusion (what mmsearch does
when scores are not calibrated: `score_calibration = false`). This script measures both, and
each part alone, as mean average precision over class-level relevance:

- esc50: "the sound of a {label}" + one clip of that label (`audio=`) -> the label's other clips;
- cifar10: "a photo of a {label}" + one image of that class (`image=`) -> the class's other
  images. CIFAR's folders are named after the classes, which keyword search would read, so the
  images are first linked into one flat folder under --work with numbered names.

Each label is queried with `--examples` different examples; the example itself is left out of
the ranking.

Usage:
    .venv/bin/python scripts/eval_fusion.py [--data ../shared/data] [--work indexes/eval]
        [--model offline-default] [--examples 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import average_precision

from mmsearch import Library
from mmsearch.config import Settings

REPO = Path(__file__).resolve().parents[1]


def labelled(folder: Path, flat: Path | None) -> dict[str, list[str]]:
    """label -> paths (as the index stores them); with `flat`, files are linked there first."""
    groups: dict[str, list[str]] = defaultdict(list)
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle)):
            path = (folder / row["path"]).resolve()
            if flat is not None:
                link = flat / f"{number:05d}{path.suffix}"
                if not link.exists():
                    flat.mkdir(parents=True, exist_ok=True)
                    os.symlink(path, link)
                path = link.absolute()
            groups[row["label"]].append(str(path))
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "indexes" / "eval")
    parser.add_argument("--model", default="offline-default")
    parser.add_argument("--examples", type=int, default=3)
    args = parser.parse_args()
    sets = (
        ("esc50", args.data / "esc50", None, "the sound of a {label}", "audio"),
        ("cifar10", args.data / "cifar10", args.work / "cifar10-flat", "a photo of a {label}", "image"),
    )
    print("| data | queries | text alone | example alone | rank fusion (RRF) | calibrated score fusion |")
    print("|---|---|---|---|---|---|")
    for name, folder, flat, template, kind in sets:
        groups = labelled(folder, flat)
        index = args.work / f"fusion-{name}-{args.model.replace(':', '_').replace('/', '_')}"
        subprocess.run(
            [sys.executable, "-m", "mmsearch", "index", str(flat or folder), "--index", str(index),
             "--model", args.model],
            check=True, stdout=subprocess.DEVNULL, cwd=REPO,
        )
        results: dict[str, list[float]] = defaultdict(list)
        arms = {"rrf": Settings(score_calibration=False), "calibrated": Settings()}
        for arm, settings in arms.items():
            with Library.open(index, create=False, readonly=True, settings=settings) as lib:
                total = sum(lib.stats().items.values())
                for label, paths in sorted(groups.items()):
                    text = template.format(label=label)
                    for example in paths[: args.examples]:
                        relevant = set(paths) - {example}
                        runs = {arm: {"text": text, kind: example}}
                        if arm == "calibrated":  # each part alone (calibration keeps its order)
                            runs |= {"text alone": {"text": text}, "example alone": {kind: example}}
                        for name_of_run, query in runs.items():
                            hits = lib.search(**query, k=total, min_score=-1, kinds=[kind])
                            ranking = [h.path for h in hits if h.path != example]
                            results[name_of_run].append(average_precision(ranking, relevant))
        cells = " | ".join(
            f"{statistics.fmean(results[run]):.3f}"
            for run in ("text alone", "example alone", "rrf", "calibrated")
        )
        print(f"| {name} | {len(results['rrf'])} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
