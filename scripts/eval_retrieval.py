"""Retrieval quality on the evaluation data (`../shared/data`, dev split), through the public API.

Every dataset is indexed by the `mmsearch index` command exactly as a user would run it, then
queried with `Library.search` (k = every indexed item and `min_score=-1`, so the relevance
cut-off never shortens a ranking):

    coco      each of the 545 captions -> its one image         Recall@1/5/10
    tuxpaint  each distinct caption -> every image with it      mAP (images only; SVGs are
              not decoded by mmsearch, so relevance counts the indexed PNGs only)
    cifar10   "a photo of a {class}" -> images of that class    mAP, P@10
    neardup   each edited copy (example-image query) -> its original among the
              coco_mini + imagenet_sample photos                Recall@1/5/10

Targets (offline-default): coco R@1 >= 0.30 and R@10 >= 0.80, neardup R@1 >= 0.99. The exit
status is 1 when one of them fails.

Usage:
    .venv/bin/python scripts/eval_retrieval.py [--model offline-default] [--data ../shared/data]
        [--work DIR] [--keep] [--only coco,neardup] [--json results.json]

    --work DIR   where the indexes go (default: a temporary folder, deleted afterwards)
    --keep       reuse indexes already in --work (brought up to date by the same
                 `mmsearch index` command, which encodes only what changed); without it every
                 index is rebuilt from scratch. Default --work with --keep: indexes/eval.

Set MMSEARCH_CACHE_DIR to share the converted-model cache with other checkouts.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmsearch import Library
from mmsearch.query.parse import parse_text

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
DATASETS = ("coco", "tuxpaint", "cifar10", "neardup")
ALIASES = {"coco_mini": "coco", "cifar": "cifar10", "tux": "tuxpaint"}
TARGET_MODEL = "offline-default"
CIFAR_TEMPLATE = "a photo of a {label}"


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class Metric:
    name: str
    value: float
    target: float | None = None  # minimum acceptable value, for TARGET_MODEL

    def verdict(self, model: str) -> str:
        if self.target is None or model != TARGET_MODEL:
            return ""
        return f">= {self.target:.2f}  {'PASS' if self.value >= self.target else 'FAIL'}"


@dataclass
class Result:
    dataset: str
    queries: int
    metrics: list[Metric]
    items: int  # what the index holds
    index_report: dict[str, Any]  # `mmsearch index --json` of this run
    search_ms: float  # median per query, through Library.search
    index_command: str
    notes: list[str] = field(default_factory=list)
    keyword_raised: int = 0  # queries whose ranking a file-name match changed

    @property
    def index_seconds(self) -> float:
        return float(self.index_report["seconds"])

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "queries": self.queries,
            "metrics": {m.name: m.value for m in self.metrics},
            "targets": {m.name: m.target for m in self.metrics if m.target is not None},
            "indexed_items": self.items,
            "index_seconds": round(self.index_seconds, 2),
            "index_stage_seconds": self.index_report["stage_seconds"],
            "index_reused": self.index_report["reused"],
            "search_ms_median": round(self.search_ms, 2),
            "index_command": self.index_command,
            "queries_raised_by_file_name_match": self.keyword_raised,
            "notes": self.notes,
        }


# --------------------------------------------------------------------------------------------
# Metrics


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


def rank_of(ranking: Sequence[str], target: str) -> int | None:
    try:
        return ranking.index(target) + 1
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Indexing (the CLI, as a user runs it) and searching (the public API)


def real(path: str | os.PathLike[str]) -> str:
    """One spelling per file, so manifest paths and hit paths compare equal."""
    return os.path.realpath(path)


def read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def model_slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_")


def build_index(
    name: str, folders: Sequence[Path], args: argparse.Namespace
) -> tuple[Path, dict[str, Any], str]:
    """Run `mmsearch index FOLDERS --index IDX --model MODEL`; returns (index, report, command)."""
    index = args.work / f"{name}-{model_slug(args.model)}"
    if index.exists() and not args.keep:
        shutil.rmtree(index)
    command = [sys.executable, "-m", "mmsearch", "index", *map(str, folders),
               "--index", str(index), "--model", args.model, "--json"]
    shown = shlex.join(["mmsearch", "index", *map(str, folders), "--index", str(index),
                        "--model", args.model])
    print(f"  $ {shown}", flush=True)
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode != 0:
        sys.exit(f"`{shown}` failed (exit {done.returncode}):\n{done.stderr.strip()}")
    report = json.loads(done.stdout)
    report["reused"] = report["unchanged"] > 0 and report["encoded"] == 0
    stages = ", ".join(f"{k} {v:.1f}" for k, v in report["stage_seconds"].items())
    print(f"    {report['scanned']} files: {report['added']} added, {report['unchanged']} "
          f"unchanged, {report['failed']} skipped ({report['seconds']:.1f} s; {stages})",
          flush=True)
    return index, report, shown


class Ranker:
    """Full rankings from `Library.search`, with the time each query took.

    Also counts the queries whose ranking an exact file-name match raised (`Hit.scores` has a
    "keyword" entry): where names carry the labels, that would be a leak, not model quality.
    """

    def __init__(self, lib: Library, kinds: Sequence[str] = ()) -> None:
        self.lib = lib
        self.kinds = tuple(kinds)
        items = lib.stats().items
        self.k = max(1, sum(n for kind, n in items.items() if not kinds or kind in kinds))
        self.seconds: list[float] = []
        self.keyword_raised = 0

    def __call__(
        self, text: str | None = None, image: str | None = None, k: int | None = None
    ) -> list[str]:
        started = time.perf_counter()
        hits = self.lib.search(text, image=image, k=k or self.k, min_score=-1, kinds=self.kinds)
        self.seconds.append(time.perf_counter() - started)
        self.keyword_raised += any("keyword" in hit.scores for hit in hits)
        return [real(hit.path) for hit in hits]

    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000 if self.seconds else 0.0


def search_index(index: Path, kinds: Sequence[str] = ()) -> tuple[Library, Ranker]:
    lib = Library.open(index, create=False)
    lib.search("warm up", k=1)  # loads the model and the vector index outside the timings
    return lib, Ranker(lib, kinds)


def finish(
    dataset: str, queries: int, metrics: list[Metric], report: dict[str, Any], rank: Ranker,
    command: str, notes: list[str],
) -> Result:
    if rank.keyword_raised:
        notes.append(f"{rank.keyword_raised} of {queries} queries had an item raised by an exact "
                     "file-name match (keyword bonus): check the names do not leak the labels")
    return Result(dataset, queries, metrics, rank.k, report, rank.median_ms(), command, notes,
                  rank.keyword_raised)


def reinterpreted(texts: Iterable[str]) -> list[str]:
    """Texts that the query syntax does not read as one plain phrase (e.g. inner quotes)."""
    return [t for t in texts if [(x.text, x.weight, x.negative) for x in parse_text(t)]
            != [(" ".join(t.split()), 1.0, False)]]


# --------------------------------------------------------------------------------------------
# Datasets


def eval_coco(args: argparse.Namespace) -> Result:
    root = args.data / "coco_mini"
    rows = read_manifest(root / "manifest.csv")
    index, report, command = build_index("coco_mini", [root], args)
    lib, rank = search_index(index)
    with lib:
        ranks = [rank_of(rank(row["caption"]), real(root / row["path"])) for row in rows]
        notes = [f"{len({r['path'] for r in rows})} images in the manifest, {rank.k} indexed"]
        odd = reinterpreted(r["caption"] for r in rows)
        if odd:
            notes.append(f"{len(odd)} caption(s) read by the query syntax as more than one plain "
                         f"phrase, as a user typing them would get: {odd}")
        return finish(
            "coco_mini caption->image", len(ranks),
            [Metric("R@1", recall_at(ranks, 1), 0.30), Metric("R@5", recall_at(ranks, 5)),
             Metric("R@10", recall_at(ranks, 10), 0.80)],
            report, rank, command, notes,
        )


def eval_tuxpaint(args: argparse.Namespace) -> Result:
    root = args.data / "tuxpaint"
    rows = read_manifest(root / "images_manifest.csv")
    index, report, command = build_index("tuxpaint", [root], args)
    lib, rank = search_index(index, kinds=["image"])
    with lib:
        # Every indexed image: any query with k = all images and no cut-off ranks them all.
        everything = lib.search("x", k=rank.k, min_score=-1, kinds=["image"])
        indexed = {real(hit.path) for hit in everything}
        by_caption: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            path = real(root / row["path"])
            if path in indexed:
                by_caption[row["caption"]].add(path)
        all_captions = {row["caption"] for row in rows}
        aps = [average_precision(rank(caption), relevant)
               for caption, relevant in by_caption.items()]
        formats: dict[str, int] = defaultdict(int)
        for row in rows:
            formats[row["format"]] += 1
        in_manifest = ", ".join(f"{n} {f.upper()}" for f, n in sorted(formats.items()))
        notes = [
            (f"manifest: {len(rows)} images ({in_manifest}); indexed: {len(indexed)} "
             f"(mmsearch does not decode SVG; {report['failed']} skipped)"),
            (f"mAP over the {len(aps)} distinct captions with at least one indexed image "
             f"(of {len(all_captions)} distinct captions; the other "
             f"{len(all_captions) - len(aps)} describe only SVGs); relevance = indexed images "
             "with the same caption; sounds (OGG) are not indexed"),
        ]
        return finish("tuxpaint caption->image", len(aps), [Metric("mAP", statistics.fmean(aps))],
                      report, rank, command, notes)


def eval_cifar10(args: argparse.Namespace) -> Result:
    root = args.data / "cifar10"
    rows = read_manifest(root / "manifest.csv")
    index, report, command = build_index("cifar10", [root], args)
    lib, rank = search_index(index)
    with lib:
        by_label: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            by_label[row["label"]].add(real(root / row["path"]))
        aps, p10 = [], []
        for label, relevant in sorted(by_label.items()):
            ranking = rank(CIFAR_TEMPLATE.format(label=label))
            aps.append(average_precision(ranking, relevant))
            p10.append(precision_at(ranking, relevant, 10))
        per_query = statistics.fmean(len(r) for r in by_label.values())
        query = CIFAR_TEMPLATE.format(label="{class}")
        notes = [f'query "{query}", {len(rows)} images, {per_query:.0f} relevant per query']
        return finish("cifar10 class->image", len(aps),
                      [Metric("mAP", statistics.fmean(aps)), Metric("P@10", statistics.fmean(p10))],
                      report, rank, command, notes)


def eval_neardup(args: argparse.Namespace) -> Result:
    root = args.data / "neardup"
    rows = read_manifest(root / "manifest.csv")
    sources = sorted({row["source_dataset"] for row in rows})
    index, report, command = build_index("neardup", [args.data / s for s in sources], args)
    lib, rank = search_index(index)
    with lib:
        ranks = []
        for row in rows:
            target = real(root / row["target_path"])
            ranks.append(rank_of(rank(image=str(root / row["query_path"]), k=10), target))
        per_transform: dict[str, list[int | None]] = defaultdict(list)
        for row, r in zip(rows, ranks):
            per_transform[row["transform"]].append(r)
        notes = [
            (f"originals indexed: {' + '.join(sources)} ({rank.k} images); query = example "
             "image, not itself indexed"),
            "R@1 by edit: " + ", ".join(
                f"{t} {recall_at(r, 1):.3f} (n={len(r)})" for t, r in sorted(per_transform.items())
            ),
        ]
        misses = [row["query_path"] for row, r in zip(rows, ranks) if r != 1]
        if misses:
            notes.append(f"not first: {misses[:20]}{' ...' if len(misses) > 20 else ''}")
        return finish(
            "neardup image->original", len(ranks),
            [Metric("R@1", recall_at(ranks, 1), 0.99), Metric("R@5", recall_at(ranks, 5)),
             Metric("R@10", recall_at(ranks, 10))],
            report, rank, command, notes,
        )


EVALUATORS: dict[str, Callable[[argparse.Namespace], Result]] = {
    "coco": eval_coco,
    "tuxpaint": eval_tuxpaint,
    "cifar10": eval_cifar10,
    "neardup": eval_neardup,
}


# --------------------------------------------------------------------------------------------
# Report


def print_table(results: list[Result], model: str) -> bool:
    """Prints the results; returns whether every target (for TARGET_MODEL) was met."""
    ok = True
    print(f"\n== Retrieval quality, model {model}")
    print(f"{'task':<26} {'queries':>7}  {'metric':<6} {'value':>6}  {'target':<13} "
          f"{'items':>6} {'index s':>8} {'query ms':>8}")
    for result in results:
        for i, metric in enumerate(result.metrics):
            verdict = metric.verdict(model)
            ok = ok and not verdict.endswith("FAIL")
            head = (f"{result.dataset:<26} {result.queries:>7}" if i == 0 else " " * 34)
            tail = (f" {result.items:>6} {result.index_seconds:>8.1f} {result.search_ms:>8.1f}"
                    if i == 0 else "")
            print(f"{head}  {metric.name:<6} {metric.value:>6.3f}  {verdict:<13}{tail}")
    print("\nNotes:")
    print("  items = what the index holds; index s = that dataset's `mmsearch index` run; "
          "query ms = median Library.search time")
    for result in results:
        name = result.dataset.split()[0]
        if result.index_report["reused"]:
            print(f"  {name}: index reused (--keep): nothing was encoded, index s is the re-run")
        for note in result.notes:
            print(f"  {name}: {note}")
    if model != TARGET_MODEL:
        print(f"  (targets apply to {TARGET_MODEL} only)")
    return ok


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=TARGET_MODEL, help="model preset (default %(default)s)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="evaluation data folder (default ../shared/data from the repo)")
    parser.add_argument("--work", type=Path, help="folder for the indexes (default: temporary)")
    parser.add_argument("--keep", action="store_true",
                        help="reuse existing indexes in --work (default --work: indexes/eval)")
    parser.add_argument("--only", default=",".join(DATASETS),
                        help=f"comma-separated subset of {','.join(DATASETS)}")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    args.only = [ALIASES.get(n.strip(), n.strip()) for n in args.only.split(",") if n.strip()]
    unknown = [n for n in args.only if n not in EVALUATORS]
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; choose from {', '.join(DATASETS)}")
    args.data = args.data.expanduser().absolute()
    if not (args.data / "coco_mini").is_dir():
        parser.error(f"no evaluation data at {args.data} (expected coco_mini/ etc.); use --data")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print("Command:", shlex.join([os.path.relpath(sys.executable, REPO), *sys.argv]), flush=True)
    temporary = None
    if args.work is None:
        if args.keep:
            args.work = REPO / "indexes" / "eval"
        else:
            temporary = tempfile.TemporaryDirectory(prefix="mmsearch-eval-")
            args.work = Path(temporary.name)
    args.work = args.work.expanduser().absolute()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"Data {args.data}; indexes in {args.work}"
          f"{' (reused if present)' if args.keep else ''}; "
          f"MMSEARCH_CACHE_DIR={os.environ.get('MMSEARCH_CACHE_DIR', '(default)')}", flush=True)
    started = time.perf_counter()
    try:
        results = []
        for name in args.only:
            print(f"\n[{name}]", flush=True)
            results.append(EVALUATORS[name](args))
    finally:
        if temporary is not None:
            temporary.cleanup()
    ok = print_table(results, args.model)
    print(f"\nTotal {time.perf_counter() - started:.0f} s.")
    if args.json:
        payload = {
            "model": args.model,
            "data": str(args.data),
            "command": shlex.join([sys.executable, *sys.argv]),
            "results": [r.to_json() for r in results],
            "targets_met": ok,
        }
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        print(f"Wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
