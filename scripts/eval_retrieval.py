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

Audio (kinds=["audio"] unless said otherwise):

    esc50     "the sound of a {label}" for the 50 labels, each scoring every clip: zero-shot
              accuracy (each clip gets the label whose query scored it highest) and P@8, mAP;
              each clip as example sound (`audio=`) -> other clips of its label   P@5
    fsdd      "zero" .. "nine" -> clips of that digit: R@1 (top hit), P@10, R-precision, mAP
    tuxpaint_sounds  each distinct caption of the tuxpaint sounds -> the sounds with it   mAP
              (the same index as `tuxpaint`: the whole folder, images and sounds)
    mixed     one index of coco_mini + esc50 + tuxpaint, no kind filter: esc50 label -> clips
              P@8 and coco caption -> image R@10, each as a ratio to the same queries on the
              single-modality index (the same collection with the other modality left out:
              what mixing sounds and images costs, which score calibration controls), and, for
              information, to the esc50-only and coco-only indexes (which also counts the cost
              of the other dataset's items of the same modality, e.g. 541 tuxpaint images); plus
              how often an image tops a sound query and the mean top-1 cosine of each kind

The reranker, stage by stage (k = 50, the reranker's N; see `eval_staged`):

    flickr8k  each distinct caption of the 500 Flickr8k photos -> its image(s)   R@1/5/10 and
              mAP@50 for the first stage (vectors alone), + keyword fusion, + zero-shot rerank,
              + rerank tuned on 4/5 of the images' captions (5 folds: head and adapter), and
              the rerank's added latency per query
    rerank    the same four stages for coco_mini and tuxpaint (rerank_coco, rerank_tuxpaint:
              one of them)
    rerank_sounds  esc50 label and tuxpaint sound caption queries, reranker off and on
    rerank_notes   one note per coco_mini photo (4 of its captions) found by its fifth
              caption, reranker off and on. The reranker leaves sounds and documents in
              their first-stage order: matching each word to a sound's windows or a note's
              chunks (commit 8297330) measured no gain here (see ARCHITECTURE.md)

Targets (offline-default): coco R@1 >= 0.30 and R@10 >= 0.80, neardup R@1 >= 0.99, esc50
zero-shot accuracy >= 0.60 and sound -> sound P@5 >= 0.50, fsdd R@1 >= 0.90, mixed ratios to
the single-modality index >= 0.90, flickr8k zero-shot rerank R@1 >= 0.12 and R@10 >= 0.40 and
a tuning gain >= 0.05 R@1, and on flickr8k's check half (photos no setting was chosen on)
zero-shot R@1 >= 0.14 and R@10 >= 0.45 (not met yet). The exit status is 1 when one of them fails.

The staged tasks also report each stage on the two halves of the photos (`benchkit.half`, a
hash of the manifest path; a caption belongs to its photo's half, the index holds them all):
the reranker's and proposals' settings are chosen on the fit half, the check half tells what
they do on photos they were not chosen on.

Usage:
    .venv/bin/python scripts/eval_retrieval.py [--model offline-default] [--data ../shared/data]
        [--work DIR] [--keep] [--only coco,neardup,esc50] [--json results.json] [--zero-shot]

    --work DIR   where the indexes go (default: a temporary folder, deleted afterwards)
    --keep       reuse indexes already in --work (brought up to date by the same
                 `mmsearch index` command, which encodes only what changed); without it every
                 index is rebuilt from scratch. Default --work with --keep: indexes/eval.

Set MMSEARCH_CACHE_DIR to share the converted-model cache with other checkouts.
"""

from __future__ import annotations

import argparse
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

from mmsearch import Hit, Library, NotIndexedError
from mmsearch.query.parse import parse_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import (  # scripts are not a package
    average_precision,
    half,
    mean_or_nan,
    precision_at,
    rank_of,
    read_manifest,
    real,
    recall_at,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
DATASETS = ("coco", "tuxpaint", "cifar10", "neardup", "esc50", "fsdd", "tuxpaint_sounds", "mixed",
            "flickr8k", "rerank", "rerank_coco", "rerank_tuxpaint", "rerank_sounds", "rerank_notes")
ALIASES = {"coco_mini": "coco", "cifar": "cifar10", "tux": "tuxpaint", "esc": "esc50",
           "tux_sounds": "tuxpaint_sounds", "flickr8k_1k": "flickr8k", "flickr": "flickr8k"}
TARGET_MODEL = "offline-default"
CIFAR_TEMPLATE = "a photo of a {label}"
SOUND_TEMPLATE = "the sound of a {label}"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
AUDIO = ["audio"]


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


# --------------------------------------------------------------------------------------------
# Indexing (the CLI, as a user runs it) and searching (the public API)


def model_slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_")


def build_index(
    name: str, folders: Sequence[Path], args: argparse.Namespace
) -> tuple[Path, dict[str, Any], str]:
    """Run `mmsearch index FOLDERS --index IDX --model MODEL`; returns (index, report, command).

    An index several tasks share (tuxpaint, esc50, coco_mini) is built once per run.
    """
    built: dict[str, tuple[Path, dict[str, Any], str]] = args.built
    if name in built:
        return built[name]
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
    built[name] = index, report, shown
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
        self, text: str | None = None, image: str | None = None, k: int | None = None,
        audio: str | None = None,
    ) -> list[str]:
        return [real(hit.path) for hit in self.hits(text, image=image, k=k, audio=audio)]

    def hits(
        self, text: str | None = None, image: str | None = None, k: int | None = None,
        audio: str | None = None,
    ) -> list[Hit]:
        started = time.perf_counter()
        hits = self.lib.search(text, image=image, audio=audio, k=k or self.k, min_score=-1,
                               kinds=self.kinds)
        self.seconds.append(time.perf_counter() - started)
        self.keyword_raised += any("keyword" in hit.scores for hit in hits)
        return hits

    @property
    def searches(self) -> int:
        return len(self.seconds)

    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000 if self.seconds else 0.0


def search_index(index: Path, kinds: Sequence[str] = ()) -> tuple[Library, Ranker]:
    lib = Library.open(index, create=False, readonly=True)
    lib.search("warm up", k=1)  # loads the model and the vector index outside the timings
    return lib, Ranker(lib, kinds)


def finish(
    dataset: str, queries: int, metrics: list[Metric], report: dict[str, Any], rank: Ranker,
    command: str, notes: list[str],
) -> Result:
    if rank.keyword_raised:
        notes.append(f"{rank.keyword_raised} of {rank.searches} searches had an item raised by an "
                     "exact file-name or text/transcript match (keyword bonus): check the names "
                     "do not leak the labels")
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
             "with the same caption; the sounds (OGG) are indexed too but filtered out "
             "(kinds=[image]; see tuxpaint_sounds)"),
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


# --------------------------------------------------------------------------------------------
# Audio


def sound_query(label: str) -> str:
    """ "the sound of a {label}" with underscores and hyphens read as spaces."""
    return SOUND_TEMPLATE.format(label=" ".join(re.sub(r"[_-]+", " ", label).split()))


def indexed_of(lib: Library, paths: Iterable[str]) -> set[str]:
    """The paths the index holds as searchable items (`Library.item`, status ok)."""
    held = set()
    for path in paths:
        try:
            if lib.item(path).status == "ok":
                held.add(path)
        except NotIndexedError:
            pass
    return held


def labelled(root: Path, rows: Iterable[dict[str, str]], key: str) -> dict[str, str]:
    """real path -> its value of `key` (label, caption)."""
    return {real(root / row["path"]): row[key] for row in rows}


def grouped(label_of: dict[str, str], keep: set[str]) -> dict[str, set[str]]:
    """label -> the paths in `keep` with it."""
    out: dict[str, set[str]] = defaultdict(set)
    for path, label in label_of.items():
        if path in keep:
            out[label].add(path)
    return out


def ceiling(sizes: Iterable[int], k: int) -> float:
    """The best P@k possible when the queries have these numbers of relevant items."""
    return statistics.fmean(min(n, k) / k for n in sizes)


def skipped_note(report: dict[str, Any], wanted: int, held: int, what: str) -> str:
    note = f"{held} of the {wanted} {what} in the manifest are indexed"
    failures = report.get("failures") or []
    if report.get("failed"):
        shown = "; ".join(f"{Path(p).name}: {r}" for p, r in failures[:5])
        note += f"; {report['failed']} file(s) skipped by `mmsearch index`: {shown}"
    return note


def eval_esc50(args: argparse.Namespace) -> list[Result]:
    root = args.data / "esc50"
    label_of = labelled(root, read_manifest(root / "manifest.csv"), "label")
    index, report, command = build_index("esc50", [root], args)
    lib, rank = search_index(index, kinds=AUDIO)
    with lib:
        indexed = indexed_of(lib, label_of)
        by_label = grouped(label_of, indexed)
        labels = sorted(set(label_of.values()))
        # Every label query scores every clip (k = all clips, no cut-off): zero-shot, P@8, mAP.
        scores: dict[str, dict[str, float]] = defaultdict(dict)
        p8, aps, unscored = [], [], 0
        for label in labels:
            hits = rank.hits(sound_query(label))
            ranking = [real(hit.path) for hit in hits]
            for hit, path in zip(hits, ranking):
                scores[path][label] = hit.score
            unscored += len(indexed - set(ranking))
            p8.append(precision_at(ranking, by_label[label], 8))
            aps.append(average_precision(ranking, by_label[label]) if by_label[label] else 0.0)
        guess = {clip: max(labels, key=lambda lab: scores[clip].get(lab, float("-inf")))
                 for clip in label_of if scores[clip]}
        correct = [clip for clip, label in label_of.items() if guess.get(clip) == label]
        per_label = {lab: sum(1 for c in correct if label_of[c] == lab) / len(by_label[lab])
                     for lab in labels if by_label[lab]}
        worst = sorted(per_label.items(), key=lambda kv: kv[1])[:8]
        sizes = [len(by_label[lab]) for lab in labels]
        notes = [
            skipped_note(report, len(label_of), len(indexed), "clips"),
            (f'query "{SOUND_TEMPLATE}" ({len(labels)} labels, {min(sizes)}-{max(sizes)} clips '
             f"each); zero-shot accuracy over all {len(label_of)} manifest clips (a clip a label "
             f"query did not return counts -inf for it: {unscored} such pairs); P@8 ceiling "
             f"{ceiling(sizes, 8):.3f} (labels with fewer than 8 clips)"),
            "zero-shot, worst labels (share of their clips right): "
            + ", ".join(f"{lab} {v:.2f}" for lab, v in worst),
        ]
        label_result = finish(
            "esc50 label->sound", len(labels),
            [Metric("zero-shot acc", len(correct) / len(label_of), 0.60),
             Metric("P@8", statistics.fmean(p8)), Metric("mAP", statistics.fmean(aps))],
            report, rank, command, notes,
        )

        # Each clip as example sound: its stored acoustic vector; itself dropped from the list.
        by_example = Ranker(lib, AUDIO)
        p5, p1, self_first = [], [], 0
        for clip in sorted(indexed):
            ranking = by_example(audio=clip, k=6)
            self_first += bool(ranking) and ranking[0] == clip
            others = [path for path in ranking if path != clip][:5]
            relevant = by_label[label_of[clip]] - {clip}
            p5.append(precision_at(others, relevant, 5))
            p1.append(precision_at(others, relevant, 1))
        notes = [
            (f"each indexed clip as `audio=` example, itself dropped; P@5 ceiling "
             f"{ceiling([len(by_label[label_of[c]]) - 1 for c in indexed], 5):.3f}; "
             f"the example itself ranked first for {self_first} of {len(indexed)}"),
        ]
        example_result = finish(
            "esc50 sound->sound", len(p5),
            [Metric("P@5", mean_or_nan(p5), 0.50), Metric("P@1", mean_or_nan(p1))],
            report, by_example, command, notes,
        )
        return [label_result, example_result]


def eval_fsdd(args: argparse.Namespace) -> Result:
    root = args.data / "fsdd"
    label_of = labelled(root, read_manifest(root / "manifest.csv"), "label")
    index, report, command = build_index("fsdd", [root], args)
    lib, rank = search_index(index, kinds=AUDIO)
    with lib:
        indexed = indexed_of(lib, label_of)
        by_digit = grouped(label_of, indexed)
        r1, p10, rprec, aps, top_keyword = [], [], [], [], 0
        for digit, word in enumerate(DIGIT_WORDS):
            relevant = by_digit[str(digit)]
            hits = rank.hits(word)
            ranking = [real(hit.path) for hit in hits]
            r1.append(float(bool(ranking) and ranking[0] in relevant))
            p10.append(precision_at(ranking, relevant, 10))
            rprec.append(precision_at(ranking, relevant, max(1, len(relevant))))
            aps.append(average_precision(ranking, relevant) if relevant else 0.0)
            top_keyword += sum(1 for hit in hits[:10] if "keyword" in hit.scores)
        # How often the transcript has the digit (as a word or a numeral): what keyword matching
        # and the transcript embeddings can work with.
        heard = 0
        for path in indexed:
            digit = int(label_of[path])
            said = " ".join(text for _, _, text in lib.item(path).transcript).lower()
            heard += bool(re.search(rf"\b({DIGIT_WORDS[digit]}|{digit})\b", said))
        per_digit = ", ".join(f"{w} {v:.2f}" for w, v in zip(DIGIT_WORDS, rprec))
        notes = [
            skipped_note(report, len(label_of), len(indexed), "clips"),
            (f"queries: the words zero..nine, {len(indexed)} clips, "
             f"{statistics.fmean(len(v) for v in by_digit.values()):.0f} relevant per word; "
             "R-prec = share of the top N that are the digit, N = that digit's clips"),
            f"R-precision per word: {per_digit}",
            (f"transcripts holding the clip's digit (word or numeral): {heard} of {len(indexed)}; "
             f"top-10 hits raised by a keyword (transcript or name) match: {top_keyword} of "
             f"{10 * len(DIGIT_WORDS)} (file names hold numerals, not the words)"),
        ]
        return finish(
            "fsdd word->spoken digit", len(DIGIT_WORDS),
            [Metric("R@1", statistics.fmean(r1), 0.90), Metric("P@10", statistics.fmean(p10)),
             Metric("R-prec", statistics.fmean(rprec)), Metric("mAP", statistics.fmean(aps))],
            report, rank, command, notes,
        )


def eval_tuxpaint_sounds(args: argparse.Namespace) -> Result:
    root = args.data / "tuxpaint"
    caption_of = labelled(root, read_manifest(root / "sounds_manifest.csv"), "caption")
    index, report, command = build_index("tuxpaint", [root], args)
    lib, rank = search_index(index, kinds=AUDIO)
    with lib:
        indexed = indexed_of(lib, caption_of)
        by_caption = grouped(caption_of, indexed)
        aps, r1 = [], []
        for caption, relevant in by_caption.items():
            ranking = rank(caption)
            aps.append(average_precision(ranking, relevant))
            r1.append(float(bool(ranking) and ranking[0] in relevant))
        distinct = set(caption_of.values())
        notes = [
            skipped_note(report, len(caption_of), len(indexed), "sounds"),
            (f"captions from sounds_manifest.csv; {len(by_caption)} distinct captions with an "
             f"indexed sound (of {len(distinct)}), "
             f"{sum(len(v) > 1 for v in by_caption.values())} shared by several sounds; "
             f"same index as `tuxpaint` (whole folder), kinds={AUDIO}; file names often "
             "spell the caption (crow.ogg: \"A crow.\")"),
        ]
        odd = reinterpreted(by_caption)
        if odd:
            notes.append(f"{len(odd)} caption(s) read by the query syntax as more than one plain "
                         f"phrase: {odd}")
        return finish(
            "tuxpaint_sounds caption->sound", len(aps),
            [Metric("mAP", statistics.fmean(aps)), Metric("R@1", statistics.fmean(r1))],
            report, rank, command, notes,
        )


def by_kind(lib: Library, text: str, k: int) -> dict[str, list[Hit]]:
    """The first k hits of each kind (audio, image) for a query: kind-filtered searches."""
    return {kind: lib.search(text, k=k, min_score=-1, kinds=[kind]) for kind in ("audio", "image")}


def add_top1(tops: dict[str, list[float]], hits: dict[str, list[Hit]]) -> None:
    for kind, found in hits.items():
        if found:
            tops[kind].append(found[0].score)


def ratio(mixed: float, single: float) -> float:
    return mixed / single if single > 0 else float("nan")


def eval_mixed(args: argparse.Namespace) -> list[Result]:
    esc_root, coco_root, tux_root = (args.data / n for n in ("esc50", "coco_mini", "tuxpaint"))
    esc_label = labelled(esc_root, read_manifest(esc_root / "manifest.csv"), "label")
    coco_rows = read_manifest(coco_root / "manifest.csv")
    esc_index, _, _ = build_index("esc50", [esc_root], args)
    coco_index, _, _ = build_index("coco_mini", [coco_root], args)
    index, report, command = build_index("mixed", [coco_root, esc_root, tux_root], args)
    mixed_lib, mixed = search_index(index)  # no kind filter anywhere: every kind competes
    mixed_coco = Ranker(mixed_lib)  # its own timings and keyword counts
    esc_lib, esc_alone = search_index(esc_index)
    coco_lib, coco_alone = search_index(coco_index)
    with mixed_lib, esc_lib, coco_lib:
        kinds = mixed_lib.stats().items
        by_label = grouped(esc_label, indexed_of(mixed_lib, esc_label))
        labels = sorted(by_label)
        p8_mixed, p8_single, p8_sounds, image_first = [], [], [], 0
        top8: dict[str, int] = defaultdict(int)  # what fills the mixed top 8 besides relevant
        esc_top: dict[str, list[float]] = defaultdict(list)
        for label in labels:
            text, relevant = sound_query(label), by_label[label]
            hits = mixed.hits(text, k=8)
            ranking = [real(hit.path) for hit in hits]
            p8_mixed.append(precision_at(ranking, relevant, 8))
            p8_single.append(precision_at(esc_alone(text, k=8), relevant, 8))
            image_first += bool(hits) and hits[0].kind == "image"
            for hit, path in zip(hits, ranking):
                if path in esc_label:
                    top8["other esc50 clips"] += path not in relevant
                else:
                    top8["tuxpaint sounds" if hit.kind == "audio" else hit.kind] += 1
            filtered = by_kind(mixed_lib, text, 8)
            add_top1(esc_top, filtered)
            p8_sounds.append(precision_at([real(h.path) for h in filtered["audio"]], relevant, 8))
        coco_images = {real(coco_root / row["path"]) for row in coco_rows}
        r10_mixed, r10_single, r10_images, sound_first = [], [], [], 0
        top10: dict[str, int] = defaultdict(int)
        coco_top: dict[str, list[float]] = defaultdict(list)
        for row in coco_rows:
            target = real(coco_root / row["path"])
            hits = mixed_coco.hits(row["caption"], k=10)
            ranking = [real(h.path) for h in hits]
            r10_mixed.append(rank_of(ranking, target))
            r10_single.append(rank_of(coco_alone(row["caption"], k=10), target))
            sound_first += bool(hits) and hits[0].kind == "audio"
            for hit, path in zip(hits, ranking):
                if path != target:
                    top10["other coco images" if path in coco_images else
                          "sounds" if hit.kind == "audio" else f"tuxpaint {hit.kind}s"] += 1
            filtered = by_kind(mixed_lib, row["caption"], 10)
            add_top1(coco_top, filtered)
            r10_images.append(rank_of([real(h.path) for h in filtered["image"]], target))
        p8m, p8s = statistics.fmean(p8_mixed), statistics.fmean(p8_single)
        r10m, r10s = recall_at(r10_mixed, 10), recall_at(r10_single, 10)
        held = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        esc_notes = [
            (f"one index of coco_mini + esc50 + tuxpaint ({held}); no kind filter; single = "
             f"the esc50-only index, same queries; tuxpaint sounds of the same thing (cow, pig, "
             f"crow ...) count as not relevant"),
            "mixed top-8 slots not relevant, by what: "
            + (", ".join(f"{n} {what}" for what, n in sorted(top8.items())) or "none"),
            ("top-1 cos = mean best score among sounds / among images, and \"sounds only\" = "
             "P@8 of kinds=[audio], from kind-filtered searches of the mixed index (the cost of "
             "the images alone)"),
        ]
        esc_result = finish(
            "mixed esc50 label->sound", len(labels),
            [Metric("P@8 mixed", p8m), Metric("P@8 single", p8s),
             Metric("P@8 mixed/single", ratio(p8m, p8s)),
             Metric("P@8 mixed sounds only", statistics.fmean(p8_sounds)),
             # What the sounds lose to the images: the same collection, the images left out.
             Metric("P@8 mixed/sounds only", ratio(p8m, statistics.fmean(p8_sounds)), 0.90),
             Metric("top-1 is image", image_first / len(labels)),
             Metric("top-1 cos sound", mean_or_nan(esc_top["audio"])),
             Metric("top-1 cos image", mean_or_nan(esc_top["image"]))],
            report, mixed, command, esc_notes,
        )
        coco_notes = [
            ("single = the coco_mini-only index, same captions, no kind filter; \"images only\" "
             "= kinds=[image] on the mixed index (the cost of the tuxpaint images alone)"),
            "mixed top-10 slots not the target, by what: "
            + ", ".join(f"{n} {what}" for what, n in sorted(top10.items())),
        ]
        coco_result = finish(
            "mixed coco caption->image", len(coco_rows),
            [Metric("R@10 mixed", r10m), Metric("R@10 single", r10s),
             Metric("R@10 mixed/single", ratio(r10m, r10s)),
             Metric("R@10 mixed images only", recall_at(r10_images, 10)),
             # What the images lose to the sounds: the same collection, the sounds left out.
             Metric("R@10 mixed/images only", ratio(r10m, recall_at(r10_images, 10)), 0.90),
             Metric("top-1 is sound", sound_first / len(coco_rows)),
             Metric("top-1 cos image", mean_or_nan(coco_top["image"])),
             Metric("top-1 cos sound", mean_or_nan(coco_top["audio"]))],
            report, mixed_coco, command, coco_notes,
        )
        return [esc_result, coco_result]


# --------------------------------------------------------------------------------------------
# The reranker, stage by stage (flickr8k_1k, coco_mini, tuxpaint)

STAGE_K = 50  # the reranker's N: ranks past it count as misses for R@10 anyway
FOLDS = 5


def staged_library(index: Path, rerank: bool, readonly: bool = True, keywords: bool = True) -> Library:
    """The index opened as one stage sees it. `keywords=False` gives the searcher an empty
    keyword list (a measurement device: the product has no switch for it), so the vectors
    alone rank."""
    from mmsearch.config import Settings

    lib = Library.open(index, create=False, readonly=readonly,
                       settings=Settings(rerank=rerank, rerank_top_n=STAGE_K))
    if not keywords:
        lib._catalog.keyword_search = lambda *args, **kwargs: []
    lib.search("warm up", k=1)
    return lib


def staged_metrics(
    rankings: Sequence[Sequence[str]], relevant: Sequence[set[str]],
    targets: dict[str, float], t: str,
) -> list[Metric]:
    ranks = [first_rank_paths(r, rel) for r, rel in zip(rankings, relevant)]
    return [Metric("R@1", recall_at(ranks, 1), targets.get(f"{t} R@1")),
            Metric("R@5", recall_at(ranks, 5)),
            Metric("R@10", recall_at(ranks, 10), targets.get(f"{t} R@10")),
            Metric(f"mAP@{STAGE_K}", statistics.fmean(
                average_precision(r, rel) for r, rel in zip(rankings, relevant)))]


def first_rank_paths(ranking: Sequence[str], relevant: set[str]) -> int | None:
    return next((n for n, path in enumerate(ranking, 1) if path in relevant), None)


TUNED_FILES = ("rerank.npz", "rerank.json", "rerank-head.onnx")


def search_stages(
    stages: dict[str, Library], queries: Sequence[str], kinds: Sequence[str]
) -> tuple[dict[str, list[list[str]]], dict[str, list[float]]]:
    """Each query in every stage's library, the stages alternating per query (a busy machine
    slows all alike): per stage, the rankings (k = STAGE_K) and the ms each search took. The
    libraries are closed afterwards."""
    rankings: dict[str, list[list[str]]] = {stage: [] for stage in stages}
    times: dict[str, list[float]] = {stage: [] for stage in stages}
    try:
        for query in queries:
            for stage, lib in stages.items():
                started = time.perf_counter()
                hits = lib.search(query, k=STAGE_K, min_score=-1, kinds=kinds)
                times[stage].append(1000 * (time.perf_counter() - started))
                rankings[stage].append([real(h.path) for h in hits])
    finally:
        for lib in stages.values():
            lib.close()
    return rankings, times


def eval_staged(
    name: str, root: Path, rows: list[dict[str, str]], args: argparse.Namespace,
    targets: dict[str, float] | None = None, kinds: Sequence[str] = (),
) -> list[Result]:
    """Caption -> image R@1/5/10 and mAP@50 through `Library.search` (k = 50), on one index and
    the same queries: (a) first stage, vectors alone (the keyword list emptied); (b) + keyword
    fusion (the product's first stage); (c) + zero-shot reranker; (d) + reranker tuned by
    `Library.tune` on the captions of 4/5 of the images and evaluated on the captions of the
    other 1/5 (5 folds over images, so every caption is a held-out query once; tune keeps
    what its own held-out split approves, else the zero-shot reranker stays). Relevant = every
    indexed image with the same caption. The added latency (c - b) is measured per query, the
    settings alternating, so a busy machine slows both alike."""
    targets = targets or {}
    index, report, command = build_index(name, [root], args)
    for leftover in TUNED_FILES:
        (index / leftover).unlink(missing_ok=True)
    captions = [row["caption"] for row in rows]
    with staged_library(index, rerank=False) as probe:
        indexed = {real(h.path) for h in probe.search("x", k=10_000, min_score=-1, kinds=["image"])}
    relevant: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        path = real(root / row["path"])
        if path in indexed:
            relevant[row["caption"]].add(path)
    queries = [c for c in dict.fromkeys(captions) if c in relevant]
    kinds = tuple(kinds) or ("image",)
    stages = {
        "vectors": staged_library(index, False, keywords=False),
        "keyword": staged_library(index, False),
        "zero": staged_library(index, True),
    }
    rankings, times = search_stages(stages, queries, kinds)
    # Tuned: k folds over the images; each fold's head/adapter is learnt from the other folds'
    # captions (turned on only when tune's own held-out split shows a gain).
    images = sorted({p for ps in relevant.values() for p in ps})
    fold_of = {path: n % FOLDS for n, path in enumerate(images)}
    tuned_ranking: dict[str, list[str]] = {}
    outcomes, tune_seconds, tuned_ms = [], [], []
    for fold in range(0 if args.zero_shot else FOLDS):
        train = [(real(root / r["path"]), r["caption"]) for r in rows
                 if real(root / r["path"]) in fold_of and fold_of[real(root / r["path"])] != fold]
        test = [c for c in queries if all(fold_of[p] == fold for p in relevant[c])]
        with staged_library(index, rerank=True, readonly=False) as lib:
            started = time.perf_counter()
            outcome = lib.tune(train)
            tune_seconds.append(time.perf_counter() - started)
            outcomes.append(outcome)
            print(f"    fold {fold + 1}/{FOLDS}: {outcome.captions} training captions, "
                  f"{len(test)} test captions; tune: {outcome.reason} "
                  f"(held-out {outcome.before} -> {outcome.after}; {tune_seconds[-1]:.0f} s)",
                  flush=True)
            for setting, got in outcome.tried.items():
                print(f"      held-out, {setting}: {got}", flush=True)
            for caption in test:
                started = time.perf_counter()
                hits = lib.search(caption, k=STAGE_K, min_score=-1, kinds=kinds)
                tuned_ms.append(1000 * (time.perf_counter() - started))
                tuned_ranking[caption] = [real(h.path) for h in hits]
        for leftover in TUNED_FILES:
            (index / leftover).unlink(missing_ok=True)
    # Captions whose images fall in different folds are never held out: compare like with like.
    held = [i for i, c in enumerate(queries) if c in tuned_ranking]
    added = statistics.median(times["zero"]) - statistics.median(times["keyword"])
    notes = [(f"{len(queries)} distinct captions with an indexed image, {len(images)} images; "
              f"k={STAGE_K}; stages share one index and the same queries"),
             ("first stage = vectors alone (the searcher's keyword list emptied); + keyword "
              "fusion = the product's first stage (FTS5/BM25 matches of names and text lifted)")]
    label = f"{name} caption->image"
    # A caption belongs to its photos' half (fit or check, `benchkit.half`); the index still
    # holds every photo, as a user's would. Settings are chosen on the fit half.
    half_of = {real(root / row["path"]): half(row["path"]) for row in rows}
    halves = {c: {half_of[p] for p in relevant[c]} for c in queries}
    split = {part: [i for i, c in enumerate(queries) if halves[c] == {part}] for part in ("fit", "check")}
    notes.append(f"halves (by photo, `benchkit.half`): fit {len(split['fit'])} captions, check "
                 f"{len(split['check'])}; {len(queries) - len(split['fit']) - len(split['check'])} "
                 "captions with photos in both are in neither")
    results = []
    for stage, title, t in (("vectors", "first stage", "first"),
                            ("keyword", "+ keyword fusion", "keyword"),
                            ("zero", "+ zero-shot rerank", "zero")):
        results.append(Result(
            f"{label} {title}", len(queries),
            staged_metrics(rankings[stage], [relevant[c] for c in queries], targets, t),
            len(indexed), report, statistics.median(times[stage]), command,
            notes if stage == "vectors" else []))
        for part, rows_of in split.items():
            results.append(Result(
                f"{label} {title} [{part} half]", len(rows_of),
                staged_metrics([rankings[stage][i] for i in rows_of],
                               [relevant[queries[i]] for i in rows_of], targets, f"{t} {part}"),
                len(indexed), report, statistics.median(times[stage]), command))
    if args.zero_shot:
        return results
    tuned = staged_metrics([tuned_ranking[queries[i]] for i in held],
                           [relevant[queries[i]] for i in held], targets, "tuned")
    zero_held = staged_metrics([rankings["zero"][i] for i in held],
                               [relevant[queries[i]] for i in held], targets, "zero-held")
    gain = tuned[0].value - zero_held[0].value
    heads = sum(o.head for o in outcomes)
    adapters = sum(o.weight > 0 for o in outcomes)
    results.append(Result(
        f"{label} + tuned rerank", len(held),
        [*tuned, Metric("zero-shot R@1 (same q)", zero_held[0].value),
         Metric("R@1 gain from tuning", gain, targets.get("tuned gain")),
         Metric("added ms/query (N=50)", added),
         Metric("tuned ms/query", statistics.median(tuned_ms))],
        len(indexed), report, statistics.median(times["zero"]), command,
        [(f"tuned: {FOLDS} folds over images; the head turned on in {heads} of {FOLDS}, the "
          f"adapter in {adapters} (tune {statistics.fmean(tune_seconds):.0f} s per fold); "
          f"{len(queries) - len(held)} captions shared by images of different folds are left "
          "out of this row"),
         (f"added latency of the zero-shot rerank at N={STAGE_K}: median {added:.1f} ms "
          f"(first stage with keywords {statistics.median(times['keyword']):.1f} ms, with "
          f"rerank {statistics.median(times['zero']):.1f} ms; word vectors cached across "
          "queries)"),
         (f"a tuned search (the adapter's proposals, adapter and head scores included) took "
          f"{statistics.median(tuned_ms):.1f} ms median, timed apart from the stages above "
          "(not interleaved with them)")],
    ))
    for part, rows_of in split.items():
        kept = [i for i in held if i in set(rows_of)]
        results.append(Result(
            f"{label} + tuned rerank [{part} half]", len(kept),
            staged_metrics([tuned_ranking[queries[i]] for i in kept],
                           [relevant[queries[i]] for i in kept], targets, f"tuned {part}"),
            len(indexed), report, statistics.median(tuned_ms), command))
    return results


def eval_flickr8k(args: argparse.Namespace) -> list[Result]:
    root = args.data / "flickr8k_1k"
    return eval_staged(
        "flickr8k_1k", root, read_manifest(root / "manifest.csv"), args,
        {"zero R@1": 0.12, "zero R@10": 0.40, "tuned gain": 0.05,
         # issue 20: on the photos no setting was chosen on (not met yet: ARCHITECTURE.md,
         # "Settings chosen on one half of the photos")
         "zero check R@1": 0.14, "zero check R@10": 0.45},
    )


def eval_rerank_coco(args: argparse.Namespace) -> list[Result]:
    coco = args.data / "coco_mini"
    return eval_staged("coco_mini", coco, read_manifest(coco / "manifest.csv"), args)


def eval_rerank_tuxpaint(args: argparse.Namespace) -> list[Result]:
    tux = args.data / "tuxpaint"
    return eval_staged("tuxpaint", tux, read_manifest(tux / "images_manifest.csv"), args)


def rerank_on_off(
    label: str, index: Path, report: dict[str, Any], command: str,
    relevant: dict[str, set[str]], kinds: Sequence[str], notes: list[str],
) -> list[Result]:
    """R@1/5/10 and mAP@50 of `relevant`'s queries with the reranker off, then on (k = 50,
    kind-filtered), on one index; the settings alternate per query, so a busy machine slows
    both alike."""
    queries = list(relevant)
    stages = {"off": staged_library(index, False), "on": staged_library(index, True)}
    items = sum(n for kind, n in stages["off"].stats().items.items() if kind in kinds)
    rankings, times = search_stages(stages, queries, kinds)
    wanted = [relevant[q] for q in queries]
    return [
        Result(f"{label} {title}", len(queries), staged_metrics(rankings[stage], wanted, {}, stage),
               items, report, statistics.median(times[stage]), command, notes if stage == "off" else [])
        for stage, title in (("off", "first stage"), ("on", "+ zero-shot rerank"))
    ]


def eval_rerank_sounds(args: argparse.Namespace) -> list[Result]:
    """The reranker on sounds: ESC-50 label queries and tuxpaint sound captions, reranker off
    and on (equal while sounds keep their first-stage order)."""
    esc = args.data / "esc50"
    esc_label = labelled(esc, read_manifest(esc / "manifest.csv"), "label")
    index, report, command = build_index("esc50", [esc], args)
    relevant: dict[str, set[str]] = defaultdict(set)
    for path, label in esc_label.items():
        relevant[sound_query(label)].add(path)
    results = rerank_on_off("esc50 label->sound", index, report, command, relevant, AUDIO,
                            [f'queries "{SOUND_TEMPLATE}"; relevant = the label\'s clips'])
    tux = args.data / "tuxpaint"
    caption_of = labelled(tux, read_manifest(tux / "sounds_manifest.csv"), "caption")
    index, report, command = build_index("tuxpaint", [tux], args)
    relevant = defaultdict(set)
    for path, caption in caption_of.items():
        relevant[caption].add(path)
    return results + rerank_on_off("tuxpaint_sounds caption->sound", index, report, command,
                                   relevant, AUDIO, ["relevant = every sound with the caption"])


def eval_rerank_notes(args: argparse.Namespace) -> list[Result]:
    """The reranker on documents: one Markdown note per coco_mini photo holding four of its
    captions, found by its fifth (equal while documents keep their first-stage order). The
    notes are written into the work folder (made from the data at run time, never kept in
    the repository)."""
    coco = args.data / "coco_mini"
    by_photo: dict[str, list[str]] = defaultdict(list)
    for row in read_manifest(coco / "manifest.csv"):
        by_photo[row["path"]].append(row["caption"])
    notes_dir = args.work / "coco_notes-src"
    notes_dir.mkdir(parents=True, exist_ok=True)
    relevant: dict[str, set[str]] = defaultdict(set)
    for photo, captions in sorted(by_photo.items()):
        if len(captions) < 2:
            continue
        note = notes_dir / f"{Path(photo).stem}.md"
        text = "\n\n".join(captions[1:]) + "\n"
        if not note.is_file() or note.read_text() != text:
            note.write_text(text)
        relevant[captions[0]].add(real(note))
    index, report, command = build_index("coco_notes", [notes_dir], args)
    return rerank_on_off("coco_mini notes caption->note", index, report, command, relevant, ["text"],
                         ["one note per photo (its captions 2-5), query = its first caption"])


def eval_rerank(args: argparse.Namespace) -> list[Result]:
    """The staged report for coco_mini and tuxpaint (flickr8k_1k has its own entry)."""
    return eval_rerank_coco(args) + eval_rerank_tuxpaint(args)


EVALUATORS: dict[str, Callable[[argparse.Namespace], Result | list[Result]]] = {
    "coco": eval_coco,
    "tuxpaint": eval_tuxpaint,
    "cifar10": eval_cifar10,
    "neardup": eval_neardup,
    "esc50": eval_esc50,
    "fsdd": eval_fsdd,
    "tuxpaint_sounds": eval_tuxpaint_sounds,
    "mixed": eval_mixed,
    "flickr8k": eval_flickr8k,
    "rerank": eval_rerank,
    "rerank_coco": eval_rerank_coco,
    "rerank_tuxpaint": eval_rerank_tuxpaint,
    "rerank_sounds": eval_rerank_sounds,
    "rerank_notes": eval_rerank_notes,
}


# --------------------------------------------------------------------------------------------
# Report


def print_table(results: list[Result], model: str) -> bool:
    """Prints the results; returns whether every target (for TARGET_MODEL) was met."""
    ok = True
    task_w = max([26, *(len(r.dataset) for r in results)])
    metric_w = max([6, *(len(m.name) for r in results for m in r.metrics)])
    print(f"\n== Retrieval quality, model {model}")
    print(f"{'task':<{task_w}} {'queries':>7}  {'metric':<{metric_w}} {'value':>6}  "
          f"{'target':<13} {'items':>6} {'index s':>8} {'query ms':>8}")
    for result in results:
        for i, metric in enumerate(result.metrics):
            verdict = metric.verdict(model)
            ok = ok and not verdict.endswith("FAIL")
            head = (f"{result.dataset:<{task_w}} {result.queries:>7}" if i == 0
                    else " " * (task_w + 8))
            tail = (f" {result.items:>6} {result.index_seconds:>8.1f} {result.search_ms:>8.1f}"
                    if i == 0 else "")
            print(f"{head}  {metric.name:<{metric_w}} {metric.value:>6.3f}  {verdict:<13}{tail}")
    print("\nNotes:")
    print("  items = what the index holds; index s = that dataset's `mmsearch index` run; "
          "query ms = median Library.search time")
    said = set()
    for result in results:
        name = result.dataset.split()[0]
        if result.index_report["reused"] and result.index_command not in said:
            said.add(result.index_command)
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
    parser.add_argument("--zero-shot", action="store_true",
                        help="staged tasks: leave out the tuned stage (5 `tune` runs, the "
                             "longest part: 4-9 min each for flickr8k_1k on a busy machine)")
    args = parser.parse_args(argv)
    args.only = [ALIASES.get(n.strip(), n.strip()) for n in args.only.split(",") if n.strip()]
    unknown = [n for n in args.only if n not in EVALUATORS]
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; choose from {', '.join(DATASETS)}")
    args.data = args.data.expanduser().absolute()
    args.built = {}  # index name -> build_index's answer: each index is indexed once per run
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
            done = EVALUATORS[name](args)
            results.extend(done if isinstance(done, list) else [done])
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
