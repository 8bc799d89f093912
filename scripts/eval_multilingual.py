"""Multilingual search: coco_mini photos found by captions in English, Chinese and French.

`tests/data/coco_mini_translations.csv` holds two captions of each of the 109 coco_mini photos
and their hand-made Chinese and French translations (218 per language; see tests/data/README.md).
coco_mini is indexed with each model by `mmsearch index`, as a user would, and every caption is
searched through `Library.search` over the photos:

- ranked: k = every photo, `min_score=-1` (the cut-off never shortens a ranking): R@1, R@10;
- shown: the model's default cut-off (k = 10): of the right photos the ranking has in its top
  10, the share the cut-off still shows ("kept");
- a caption in a language the model does not read is refused (`QueryError`): counted, not ranked.

Photos are split in two halves by a hash of their path: `scripts/calibrate.py` fits the
multilingual preset's caption -> photo map on the first ("fit") half's translations, so every
number is printed for all photos and for the "check" half the fit never saw. The goal: each
language's R@10 at least 0.9x English R@10 on the same photos.

With `--flickr`, English quality on photos neither preset was tuned on is printed too: every
distinct flickr8k_1k caption -> its photo(s), ranked (R@1, R@10), for each model.

Usage:
    .venv/bin/python scripts/eval_multilingual.py [--models offline-default,offline-multilingual]
        [--data ../shared/data] [--work DIR] [--keep] [--flickr]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import DATA, ROOT, half, read_manifest, real, recall_at  # scripts are not a package

from mmsearch import Library, QueryError

TRANSLATIONS = ROOT / "tests" / "data" / "coco_mini_translations.csv"
LANGUAGES = ("en", "zh", "fr")
COLUMNS = {"en": "caption", "zh": "zh", "fr": "fr"}


@dataclass
class Tally:
    ranks: list[int | None] = field(default_factory=list)
    in_top10: int = 0
    shown: int = 0
    refused: int = 0
    top10: list[tuple[float | None, list[float]]] = field(default_factory=list)
    """Per ranked query: the right photo's score when it is in the top 10, and the scores of
    the wrong photos in the top 10 (for `cutoff_scan`)."""

    def line(self) -> str:
        if not self.ranks:
            return f"refused {self.refused}"
        kept = self.shown / self.in_top10 if self.in_top10 else float("nan")
        return (f"n {len(self.ranks):3d}  R@1 {recall_at(self.ranks, 1):.3f}  "
                f"R@10 {recall_at(self.ranks, 10):.3f}  kept by the cut-off {kept:.3f}"
                + (f"  refused {self.refused}" if self.refused else ""))


def build(model: str, data: Path, work: Path, keep: bool, name: str = "coco_mini") -> Path:
    slug = model.replace("/", "_").replace(":", "_")
    index = work / f"{name}-{slug}"
    if index.exists() and not keep:
        shutil.rmtree(index)
    command = [sys.executable, "-m", "mmsearch", "index", str(data / name),
               "--index", str(index), "--model", model, "--json"]
    print("  $ " + shlex.join(["mmsearch", *command[3:-1]]), flush=True)
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        sys.exit(f"indexing failed:\n{done.stderr.strip()}")
    report = json.loads(done.stdout)
    print(f"    {report['added']} added, {report['unchanged']} unchanged, "
          f"{report['failed']} skipped ({report['seconds']:.1f} s)", flush=True)
    return index


def evaluate(model: str, index: Path, rows: list[dict[str, str]], data: Path) -> dict[tuple[str, str], Tally]:
    tallies: dict[tuple[str, str], Tally] = {}
    with Library.open(index, create=False, readonly=True) as lib:
        photos = sum(lib.stats().items.values())
        for row in rows:
            target = real(data / "coco_mini" / row["path"])
            for language in LANGUAGES:
                text = " ".join(row[COLUMNS[language]].split())
                for part in ("all", half(row["path"])):
                    tallies.setdefault((language, part), Tally())
                try:
                    hits = lib.search(text, k=photos, min_score=-1)
                    ranking = [real(h.path) for h in hits]
                    shown = [real(h.path) for h in lib.search(text, k=10)]
                except QueryError:
                    for part in ("all", half(row["path"])):
                        tallies[language, part].refused += 1
                    continue
                rank = ranking.index(target) + 1 if target in ranking else None
                for part in ("all", half(row["path"])):
                    tally = tallies[language, part]
                    tally.ranks.append(rank)
                    right = hits[rank - 1].score if rank is not None and rank <= 10 else None
                    tally.top10.append((right, [h.score for h in hits[:10] if real(h.path) != target]))
                    if rank is not None and rank <= 10:
                        tally.in_top10 += 1
                        tally.shown += target in shown
    return tallies


def flickr(model: str, index: Path, data: Path) -> tuple[int, float, float]:
    """(captions, R@1, R@10) of the distinct English flickr8k_1k captions, ranked; a caption
    shared by several photos finds any of them."""
    targets: dict[str, set[str]] = {}
    for row in read_manifest(data / "flickr8k_1k" / "manifest.csv"):
        text = " ".join(row["caption"].split())
        targets.setdefault(text, set()).add(real(data / "flickr8k_1k" / row["path"]))
    ranks: list[int | None] = []
    with Library.open(index, create=False, readonly=True) as lib:
        photos = sum(lib.stats().items.values())
        for text, wanted in targets.items():
            ranking = [real(h.path) for h in lib.search(text, k=photos, min_score=-1)]
            ranks.append(next((i for i, p in enumerate(ranking, 1) if p in wanted), None))
    return len(ranks), recall_at(ranks, 1), recall_at(ranks, 10)


def cutoff_scan(tallies: dict[tuple[str, str], Tally], cutoffs: list[float]) -> None:
    """Per cut-off, on each half with the three languages pooled: the share of the right photos
    in the top 10 that it shows, and the wrong photos it shows per query."""
    print("\n| cut-off | fit: right kept | fit: wrong shown / query | check: right kept | check: wrong shown / query |")
    print("|---|---|---|---|---|")
    for cut in cutoffs:
        cells = []
        for part in ("fit", "check"):
            pooled = [q for (lang, p), t in tallies.items() if p == part for q in t.top10]
            rights = [r for r, _ in pooled if r is not None]
            kept = sum(r >= cut for r in rights) / len(rights) if rights else float("nan")
            wrong = sum(sum(w >= cut for w in ws) for _, ws in pooled) / max(1, len(pooled))
            cells += [f"{kept:.3f}", f"{wrong:.2f}"]
        print(f"| {cut:.2f} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="offline-default,offline-multilingual")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="reuse indexes already in --work")
    parser.add_argument("--flickr", action="store_true", help="also English on flickr8k_1k")
    parser.add_argument("--cutoffs", default="", help="scan these cut-offs, e.g. 0.4,0.45,0.5")
    args = parser.parse_args()
    rows = read_manifest(TRANSLATIONS)
    work = args.work or Path(tempfile.mkdtemp(prefix="mmsearch-multilingual-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[tuple[str, str], Tally]] = {}
    for model in args.models.split(","):
        print(f"{model}:", flush=True)
        results[model] = evaluate(model, build(model, args.data, work, args.keep), rows, args.data)
        for (language, part), tally in sorted(results[model].items()):
            print(f"  {language} {part:5s}  {tally.line()}", flush=True)
    print("\n| model | photos | language | captions | R@1 | R@10 | R@10 / English R@10 | kept by the cut-off |")
    print("|---|---|---|---|---|---|---|---|")
    for model, tallies in results.items():
        for part in ("all", "check"):
            english = tallies.get(("en", part))
            for language in LANGUAGES:
                tally = tallies.get((language, part))
                if tally is None:
                    continue
                if not tally.ranks:
                    print(f"| {model} | {part} | {language} | {tally.refused} | refused | | | |")
                    continue
                r10 = recall_at(tally.ranks, 10)
                ratio = r10 / recall_at(english.ranks, 10) if english and english.ranks else float("nan")
                kept = tally.shown / tally.in_top10 if tally.in_top10 else float("nan")
                print(f"| {model} | {part} | {language} | {len(tally.ranks)} | "
                      f"{recall_at(tally.ranks, 1):.3f} | {r10:.3f} | {ratio:.2f} | {kept:.3f} |")
    if args.cutoffs:
        for model, tallies in results.items():
            print(f"\n{model}: cut-offs (languages pooled)")
            cutoff_scan(tallies, [float(c) for c in args.cutoffs.split(",")])
    if args.flickr:
        print("\n| model | flickr8k_1k English captions | R@1 | R@10 |\n|---|---|---|---|")
        for model in results:
            n, r1, r10 = flickr(model, build(model, args.data, work, args.keep, "flickr8k_1k"), args.data)
            print(f"| {model} | {n} | {r1:.3f} | {r10:.3f} |", flush=True)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
