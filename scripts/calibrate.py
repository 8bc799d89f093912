"""Fit a model's calibrated score maps on labelled dev pairs, and show what its cut-off keeps.

Every kind of cosine (`mmsearch/query/calibration.py`: space and scale key) gets a logistic
map, fitted on right and wrong matches from ../shared/data whose licence allows shipping the
two numbers, and checked on other data held out from the fit:

| map | fitted on (licence) | checked on (held out) |
|---|---|---|
| semantic/image | coco_mini: caption -> its photo (captions CC BY 4.0) | flickr8k_1k the same way |
| semantic/text | coco_mini captions as documents: caption -> the other captions of its photo | flickr8k_1k captions the same way |
| semantic/audio-bridge | tuxpaint sounds: caption -> the sounds with that caption (GPL-2) | esc50: "the sound of a {label}" -> its clips |
| visual/image | tuxpaint images: image -> the other images with its caption (GPL-2) | cifar10: image -> other images of its class |
| acoustic/audio | tuxpaint sounds: clip -> other clips of its group (mammals, birds, letters, ...; GPL-2) | esc50: clip -> other clips of its label |

For a model that reads Chinese and French (`Encoder.languages`), semantic/image is fitted on the
coco_mini photos of the fitting half (`eval_multilingual.half`, a hash of the path) with their
English captions and the Chinese and French translations of `tests/data/coco_mini_translations.csv`
together (a query in any language must score on one scale), and also checked on the translations
of the other half's photos.

Right pairs are the relevant ones, wrong pairs every other item of that kind; each query's own
file is left out. Cosines are computed as search computes them (the query vector against every
stored vector of that kind, best chunk per item), straight from the catalog, so neither the
cut-off, keyword evidence nor the reranker shapes them.

For each map and data set the script prints the share of right and of wrong matches whose
calibrated score passes 0.3 / 0.5 / 0.7: the same cut-off should keep about the same shares
everywhere, which is what "min_score means the same for every space" asks.

Usage:
    .venv/bin/python scripts/calibrate.py [--model offline-default] [--work indexes/eval]
        [--write] [--data ../shared/data] [--maps semantic/image,semantic/text]

`--write` stores the fitted maps (and a 0.5 cut-off in each space) in the model's preset in
mmsearch/encoders/presets.json; with `--maps`, only those maps are fitted and replaced, the
preset's others kept (offline-multilingual shares offline-default's image and sound networks,
so its visual and acoustic maps are offline-default's).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import random
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import half  # scripts are not a package
from eval_multilingual import TRANSLATIONS

from mmsearch import Library
from mmsearch.config import Settings
from mmsearch.encoders.base import ACOUSTIC, SEMANTIC, VISUAL, l2_normalise
from mmsearch.query.calibration import Logistic, fit_logistic, scale_key
from mmsearch.store.catalog import Catalog

REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "mmsearch" / "encoders" / "presets.json"
CUTOFFS = (0.3, 0.5, 0.7)
DEFAULT_CUTOFF = 0.5
MAX_QUERIES = 400
"""Queries per data set at most (a fixed random sample): enough for two parameters."""


@dataclass
class Pairs:
    """Cosines of right and wrong matches of one map on one data set."""

    right: list[float]
    wrong: list[float]
    queries: int


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def index_folder(folder: Path, name: str, args: argparse.Namespace) -> Path:
    """`mmsearch index FOLDER` into the work folder (only changes are encoded on re-runs)."""
    index = args.work / f"calibrate-{name}-{re.sub(r'[^A-Za-z0-9._-]+', '_', args.model)}"
    print(f"  indexing {folder} -> {index}", flush=True)
    subprocess.run(
        [sys.executable, "-m", "mmsearch", "index", str(folder), "--index", str(index),
         "--model", args.model],
        check=True, stdout=subprocess.DEVNULL, cwd=REPO,
    )
    return index


class Candidates:
    """Every stored vector of one space and scale key in an index, grouped by item."""

    def __init__(self, catalog: Catalog, space: str, key: str) -> None:
        items = [
            row for root in catalog.roots() for row in catalog.items_under(root).values()
            if row.status == "ok"
        ]
        self.ids_by_path = {row.path: row.id for row in items}
        kinds = {row.id: row.kind for row in items}
        # Ascending ids and the catalog's ORDER BY item_id keep each item's chunks together
        # and in item order, as `best` needs.
        rows = [
            (item, vector)
            for item, chunks in catalog.item_vector_rows(sorted(kinds), space).items()
            for vector, source in chunks
            if scale_key(space, kinds[item], source) == key
        ]
        self.owner = np.array([item for item, _ in rows])
        self.matrix = np.stack([vector for _, vector in rows]) if rows else np.zeros((0, 1))
        self.items, self.starts = np.unique(self.owner, return_index=True)

    def best(self, query: np.ndarray) -> dict[int, float]:
        """item -> its best chunk's cosine with the query."""
        cosines = self.matrix @ query
        return dict(zip(self.items.tolist(), np.maximum.reduceat(cosines, self.starts).tolist()))

    def item_vector(self, item: int) -> np.ndarray:
        return l2_normalise(self.matrix[self.owner == item].mean(axis=0))


def collect(
    candidates: Candidates, queries: Iterator[tuple[np.ndarray, set[int], set[int]]]
) -> Pairs:
    """Right and wrong cosines for queries given as (vector, relevant items, items to leave out)."""
    right: list[float] = []
    wrong: list[float] = []
    count = 0
    for vector, relevant, left_out in queries:
        count += 1
        for item, cosine in candidates.best(vector).items():
            if item in left_out:
                continue
            (right if item in relevant else wrong).append(cosine)
    return Pairs(right, wrong, count)


def sample(entries: list, seed: int = 0) -> list:
    return random.Random(seed).sample(entries, min(MAX_QUERIES, len(entries)))


# -- tasks: each returns the pairs of one map on one data set ----------------------------------


def multilingual(lib: Library) -> bool:
    return {"zh", "fr"} <= set(lib.encoder().languages or ())


def captions_to_photos(args, lib: Library, catalog: Catalog, folder: Path) -> Pairs:
    candidates = Candidates(catalog, SEMANTIC, "image")
    embed = lib.encoder().text_spaces()[SEMANTIC]
    rows = read_rows(folder / "manifest.csv")
    if folder.name == "coco_mini" and multilingual(lib):
        rows = [row for row in rows if half(row["path"]) == "fit"]
        rows += [{"path": row["path"], "caption": row[language]}
                 for row in read_rows(TRANSLATIONS) if half(row["path"]) == "fit"
                 for language in ("zh", "fr")]
    return _captions_to_photos(candidates, embed, folder, rows)


def translations_to_photos(args, lib: Library, catalog: Catalog, folder: Path) -> Pairs:
    """The Chinese and French captions of the photos of the checking half (held out)."""
    rows = [{"path": row["path"], "caption": row[language]}
            for row in read_rows(TRANSLATIONS) if half(row["path"]) == "check"
            for language in ("zh", "fr")]
    candidates = Candidates(catalog, SEMANTIC, "image")
    return _captions_to_photos(candidates, lib.encoder().text_spaces()[SEMANTIC], folder, rows)


def _captions_to_photos(candidates: Candidates, embed, folder: Path, rows: list[dict[str, str]]) -> Pairs:
    by_caption: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        by_caption[row["caption"]].add(candidates.ids_by_path[str((folder / row["path"]).resolve())])
    queries = sample(rows)
    vectors = embed([row["caption"] for row in queries])
    return collect(candidates, ((v, by_caption[r["caption"]], set()) for v, r in zip(vectors, queries)))


def captions_as_documents(args, lib: Library, catalog: Catalog, folder: Path) -> Pairs:
    """Each caption of a photo becomes a document; a caption finds its photo's other captions."""
    docs = args.work / f"documents-{folder.name}"
    by_photo: dict[str, list[Path]] = defaultdict(list)
    for row in read_rows(folder / "manifest.csv"):
        doc = docs / f"{Path(row['path']).stem}-{len(by_photo[row['path']])}.txt"
        if not doc.exists():
            doc.parent.mkdir(parents=True, exist_ok=True)
            doc.write_text(row["caption"] + "\n", encoding="utf-8")
        by_photo[row["path"]].append(doc)
    index = index_folder(docs, f"docs-{folder.name}", args)
    with contextlib.closing(Catalog(index / "catalog.db", readonly=True)) as docs_catalog:
        candidates = Candidates(docs_catalog, SEMANTIC, "text")
        queries = sample([(doc, group) for group in by_photo.values() for doc in group])
        vectors = lib.encoder().text_spaces()[SEMANTIC](
            [doc.read_text(encoding="utf-8").strip() for doc, _ in queries]
        )
        ids = candidates.ids_by_path
        return collect(candidates, (
            (v, {ids[str(d.resolve())] for d in group}, {ids[str(doc.resolve())]})
            for v, (doc, group) in zip(vectors, queries)
        ))


def labels_to_sounds(args, lib: Library, catalog: Catalog, folder: Path) -> Pairs:
    candidates = Candidates(catalog, SEMANTIC, "audio-bridge")
    manifest = folder / ("sounds_manifest.csv" if folder.name == "tuxpaint" else "manifest.csv")
    groups: dict[str, set[int]] = defaultdict(set)
    for row in read_rows(manifest):
        text = row.get("caption") or f"the sound of a {row['label']}"
        item = candidates.ids_by_path.get(str((folder / row["path"]).resolve()))
        if item is not None:
            groups[text].add(item)
    texts = sorted(groups)
    vectors = lib.encoder().text_spaces()[SEMANTIC](texts)
    return collect(candidates, ((v, groups[t], set()) for v, t in zip(vectors, texts)))


def example_to_same_label(
    space: str, key: str, manifest: str, label: Callable[[dict[str, str]], str]
) -> Callable[..., Pairs]:
    """Items as examples ("more like this"): right are the other items with the same label."""

    def task(args, lib: Library, catalog: Catalog, folder: Path) -> Pairs:
        candidates = Candidates(catalog, space, key)
        groups: dict[str, set[int]] = defaultdict(set)
        for row in read_rows(folder / manifest):
            item = candidates.ids_by_path.get(str((folder / row["path"]).resolve()))
            if item is not None:
                groups[label(row)].add(item)
        shared = [(item, group) for group in groups.values() if len(group) > 1 for item in group]
        return collect(candidates, (
            (candidates.item_vector(item), group - {item}, {item}) for item, group in sample(shared)
        ))

    return task


TASKS: dict[tuple[str, str], tuple[tuple[str, Callable[..., Pairs]], ...]] = {
    # (space, key): ((data set, task), ...): the first is fitted on, the others are held out.
    (SEMANTIC, "image"): (
        ("coco_mini", captions_to_photos), ("flickr8k_1k", captions_to_photos),
        ("coco_mini", translations_to_photos),  # multilingual models only
    ),
    (SEMANTIC, "text"): (("coco_mini", captions_as_documents), ("flickr8k_1k", captions_as_documents)),
    (SEMANTIC, "audio-bridge"): (("tuxpaint", labels_to_sounds), ("esc50", labels_to_sounds)),
    (VISUAL, "image"): (
        ("tuxpaint", example_to_same_label(
            VISUAL, "image", "images_manifest.csv", lambda row: row["caption"])),
        ("cifar10", example_to_same_label(VISUAL, "image", "manifest.csv", lambda row: row["label"])),
    ),
    (ACOUSTIC, "audio"): (
        # sounds/<category>/<group>/<name>.ogg: "mammals", "birds", "alphabets", "math", ...
        ("tuxpaint", example_to_same_label(
            ACOUSTIC, "audio", "sounds_manifest.csv", lambda row: Path(row["path"]).parts[2])),
        ("esc50", example_to_same_label(ACOUSTIC, "audio", "manifest.csv", lambda row: row["label"])),
        ("fsdd", example_to_same_label(ACOUSTIC, "audio", "manifest.csv", lambda row: row["label"])),
    ),
}


def kept(pairs: Pairs, scale: Logistic, cut: float) -> tuple[float, float]:
    right = float(np.mean([scale(c) >= cut for c in pairs.right]))
    wrong = float(np.mean([scale(c) >= cut for c in pairs.wrong]))
    return right, wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="offline-default")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "indexes" / "eval")
    parser.add_argument("--write", action="store_true", help="store the maps in presets.json")
    parser.add_argument("--maps", default="", help="only these maps, e.g. semantic/image,semantic/text")
    args = parser.parse_args()
    if args.write and args.model not in json.loads(PRESETS.read_text()):
        sys.exit(f"{args.model} is not a preset in {PRESETS}: add an entry for it (family, "
                 "options) first, or run without --write to see the maps.")
    args.work.mkdir(parents=True, exist_ok=True)
    settings = Settings(score_calibration=False, rerank=False)
    fitted: dict[str, dict[str, list[float]]] = defaultdict(dict)
    report: list[tuple[str, str, bool, Pairs, Logistic]] = []
    chosen = {m for m in args.maps.split(",") if m}
    for (space, key), tasks in TASKS.items():
        if chosen and f"{space}/{key}" not in chosen:
            continue
        scale: Logistic | None = None
        for position, (name, task) in enumerate(tasks):
            folder = args.data / name
            index = index_folder(folder, name, args)
            with Library.open(index, create=False, readonly=True, settings=settings) as lib, \
                    contextlib.closing(Catalog(index / "catalog.db", readonly=True)) as catalog:
                if task is translations_to_photos and not multilingual(lib):
                    continue
                pairs = task(args, lib, catalog, folder)
                if task is translations_to_photos:
                    name = "coco_mini zh+fr, check half"
            if position == 0:
                scale = fit_logistic(pairs.right, pairs.wrong)
                fitted[space][key] = [round(scale.a, 4), round(scale.b, 4)]
            assert scale is not None
            report.append((f"{space}/{key}", name, position == 0, pairs, scale))
            print(f"  {space}/{key} on {name}: {pairs.queries} queries, {len(pairs.right)} right "
                  f"and {len(pairs.wrong)} wrong pairs", flush=True)

    print(f"\nModel {args.model}: maps (a, b) in score = 1 / (1 + exp(-(a * cosine + b))):")
    print(json.dumps(fitted, indent=2))
    head = " | ".join(f"right / wrong kept at {c}" for c in CUTOFFS)
    print(f"\n| map | data | role | queries | cosine 0.5 at | {head} |")
    print("|---|---|---|---|---|" + "---|" * len(CUTOFFS))
    for label, name, is_fit, pairs, scale in report:
        shares = " | ".join("{:.3f} / {:.3f}".format(*kept(pairs, scale, c)) for c in CUTOFFS)
        role = "fitted" if is_fit else "held out"
        print(f"| {label} | {name} | {role} | {pairs.queries} | {scale.cosine_at(0.5):.3f} | {shares} |")

    if args.write:
        presets = json.loads(PRESETS.read_text())
        preset = presets[args.model]
        if chosen:  # the other maps stay as they are
            for space, table in fitted.items():
                preset.setdefault("calibration", {}).setdefault(space, {}).update(table)
                preset.setdefault("cutoffs", {})[space] = DEFAULT_CUTOFF
        else:
            preset["calibration"] = fitted
            preset["cutoffs"] = {space: DEFAULT_CUTOFF for space in fitted}
        PRESETS.write_text(json.dumps(presets, indent=2, ensure_ascii=False) + "\n")
        print(f"\nWrote the maps and a {DEFAULT_CUTOFF} cut-off into {PRESETS} ({args.model}).")


if __name__ == "__main__":
    main()
