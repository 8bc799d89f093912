"""The zero-shot reranker's settings swept in numpy on the fit half of the photos, the chosen
one checked on the other half (issue 20; ARCHITECTURE.md, "Settings chosen on one half").

It mirrors the product's text search on the offline default (first stage -> its top N plus the
pooled regions' proposals -> the broader label mix standing in for the first stage, plus the
words' region score, both z-scored over the candidates) from the image network's raw outputs,
so settings kept at index time (region temperature, top-k, the broader mix) can be varied
without re-indexing. At today's settings it gives what `scripts/eval_retrieval.py --only
flickr8k` measures through `Library.search` (flickr8k_1k R@1 / R@5 / R@10 0.126 / 0.295 /
0.406 against 0.126 / 0.294 / 0.405; coco_mini 0.472 / 0.837 / 0.908 against 0.470 / 0.837 /
0.908); keyword evidence is left out (these photos' file names are numbers).

Every setting is judged on the fit half's captions, against today's, with a one-sided sign
test on the captions whose R@1 / R@10 changed (as `tune` judges its settings); `--check NAME`
then prints that setting and today's on the check half.

Usage:
    .venv/bin/python scripts/sweep_rerank.py [--data ../shared/data] [--work indexes/sweep]
        [--datasets flickr8k_1k,coco_mini] [--check NAME]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import DATA, ROOT, half, read_manifest  # scripts are not a package

from mmsearch.encoders.efficientnet import conse_weights
from mmsearch.encoders.registry import load_encoder, resolve_model
from mmsearch.media.images import decode_image
from mmsearch.query.words import content_words


@dataclass(frozen=True)
class Setting:
    """One point of the sweep: index-side (`tr`, `kr`: the regions' softmax temperature and
    classes kept; `wide_t`, `wide_share`: the broader mix) and query-side (`n`, `props`,
    `top`: regions averaged per word, `rw`: the region score's weight)."""

    n: int = 50
    props: int = 25
    top: int = 5
    rw: float = 1.0
    tr: float = 2.0
    kr: int = 10
    wide_t: float = 4.0
    wide_share: float = 3.0

    def index_side(self) -> tuple[float, int, float, float]:
        return self.tr, self.kr, self.wide_t, self.wide_share


SWEEP: dict[str, Setting] = {
    "today": Setting(),
    "N 75": Setting(n=75), "N 100": Setting(n=100),
    "proposals 0": Setting(props=0), "proposals 50": Setting(props=50),
    "top 3 regions": Setting(top=3), "top 10 regions": Setting(top=10),
    "region weight 0.5": Setting(rw=0.5), "region weight 1.5": Setting(rw=1.5),
    "region weight 2": Setting(rw=2.0),
    "regions T 1.5": Setting(tr=1.5), "regions T 3": Setting(tr=3.0), "regions T 4": Setting(tr=4.0),
    "regions top 20, T 3": Setting(kr=20, tr=3.0),
    "broad mix T 6": Setting(wide_t=6.0), "broad share 1.5": Setting(wide_share=1.5),
    "regions T 3, top 3, N 100": Setting(tr=3.0, top=3, n=100),
}


def unit_mix(ids: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> np.ndarray:
    mixed = np.einsum("rk,rkd->rd", weights, labels[ids], optimize=True)
    return weights / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-6)


def mixed(ids: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> np.ndarray:
    v = np.einsum("rk,rkd->rd", weights, labels[ids], optimize=True)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def zs(x: np.ndarray) -> np.ndarray:
    s = x.std()
    return (x - x.mean()) / s if s > 1e-9 else np.zeros_like(x)


class Dataset:
    """One dataset's photos as raw network outputs (cached in `work`) and its captions embedded."""

    def __init__(self, name: str, data: Path, work: Path, encoder: Any) -> None:
        self.name = name
        self._today: dict[str, np.ndarray] = {}
        root = data / name
        rows = read_manifest(root / "manifest.csv")
        self.paths = list(dict.fromkeys(r["path"] for r in rows))
        cache = work / f"{name}-raw.npz"
        if not cache.is_file():
            outs: list[list[np.ndarray]] = [[], []]
            for start in range(0, len(self.paths), 16):
                batch = [encoder.prepare_image(decode_image(
                    (root / p).read_bytes(), path=p, max_pixels=10**9, min_side=encoder.input_size).image)
                    for p in self.paths[start : start + 16]]
                logits, _, regions = encoder.classify(batch)
                outs[0].append(logits)
                outs[1].append(regions.astype(np.float16))
            np.savez(cache, logits=np.concatenate(outs[0]), regions=np.concatenate(outs[1]))
        with np.load(cache) as raw:
            self.logits = raw["logits"].astype(np.float64)
            self.regions = raw["regions"].astype(np.float32)
        self.labels = encoder.label_vectors.astype(np.float64)
        index = {p: i for i, p in enumerate(self.paths)}
        relevant: dict[str, set[int]] = {}
        for r in rows:
            relevant.setdefault(r["caption"], set()).add(index[r["path"]])
        self.captions = list(relevant)
        self.relevant = [relevant[c] for c in self.captions]
        parts = [{half(self.paths[i]) for i in s} for s in self.relevant]
        self.part = np.array([p.pop() if len(p) == 1 else "both" for p in parts])
        self.queries = encoder.embed_texts(self.captions).astype(np.float64)
        self.words = [content_words(c) for c in self.captions]
        vocab = sorted({w for ws in self.words for w in ws})
        self.vocab = {w: i for i, w in enumerate(vocab)}
        self.word_vectors = encoder.embed_texts([encoder.template.format(name=w) for w in vocab])
        self._built: dict[tuple[float, int, float, float], dict[str, np.ndarray]] = {}
        first_ids, first_w = conse_weights(self.logits, top_k=10, temperature=2.0)
        self.first = self.queries @ mixed(first_ids, first_w, self.labels).T

    def built(self, s: Setting) -> dict[str, np.ndarray]:
        """What the index would hold at `s`'s index-side settings (as `OfflineEncoder` builds it)."""
        key = s.index_side()
        if key not in self._built:
            n, cells, classes = self.regions.shape
            ids, w = conse_weights(self.regions.reshape(n * cells, classes).astype(np.float64),
                                   top_k=s.kr, temperature=s.tr)
            w = unit_mix(ids, w, self.labels).astype(np.float32)
            regions = np.einsum("rk,rkd->rd", w, self.labels[ids].astype(np.float32), optimize=True)
            wide_ids, wide = conse_weights(self.logits, top_k=50, temperature=s.wide_t)
            picked = np.take_along_axis(self.logits, wide_ids, axis=1)
            places, sharp = conse_weights(picked, top_k=10, temperature=2.0)
            narrow = np.zeros_like(wide)
            np.put_along_axis(narrow, places, sharp, axis=1)
            both = (unit_mix(wide_ids, narrow, self.labels)
                    + s.wide_share * unit_mix(wide_ids, wide, self.labels))
            pooled = regions.reshape(n, cells, -1).mean(axis=1)
            sims = (regions @ self.word_vectors.T.astype(np.float32)).T.reshape(-1, n, cells)
            self._built = {key: {  # one index-side setting held at a time (the sims are large)
                "wider": self.queries @ mixed(wide_ids, both, self.labels).T,
                "pooled": pooled / np.linalg.norm(pooled, axis=1, keepdims=True),
                "sims": sims, "tops": {}}}
        return self._built[key]

    def ranks(self, s: Setting, part: str) -> np.ndarray:
        """The right photo's rank per caption of `part` (10**6 when outside the candidates)."""
        b = self.built(s)
        if s.top not in b["tops"]:
            k = min(s.top, b["sims"].shape[2])
            b["tops"][s.top] = np.partition(b["sims"], b["sims"].shape[2] - k, axis=2)[:, :, -k:].mean(axis=2)
        word_image = b["tops"][s.top]
        out = []
        for q in np.where(self.part == part)[0]:
            words = [self.vocab[w] for w in self.words[q]]
            head = list(np.argsort(-self.first[q], kind="stable")[: s.n])
            if words and s.props:
                proposed = b["pooled"] @ self.word_vectors[words].mean(axis=0)
                taken = set(head)
                head += [i for i in np.argsort(-proposed, kind="stable") if i not in taken][: s.props]
            cand = np.array(head)
            fused = zs(b["wider"][q][cand])
            if words and s.rw:
                fused = fused + s.rw * zs(word_image[words][:, cand].mean(axis=0))
            ranked = cand[np.argsort(-fused, kind="stable")]
            out.append(next((n for n, i in enumerate(ranked, 1) if i in self.relevant[q]), 10**6))
        return np.array(out)


def recalls(ranks: np.ndarray) -> str:
    return " / ".join(f"{(ranks <= k).mean():.3f}" for k in (1, 5, 10))


def sign_test(before: np.ndarray, after: np.ndarray, k: int) -> str:
    """Captions that came into / dropped out of the top k, and the one-sided p of the gain."""
    up = int(((after <= k) & (before > k)).sum())
    down = int(((before <= k) & (after > k)).sum())
    p = sum(math.comb(up + down, i) for i in range(up, up + down + 1)) / 2 ** (up + down)
    return f"+{up}/-{down} p={p:.2f}"


def report(datasets: list[Dataset], part: str, names: list[str], write: Callable[[str], None]) -> None:
    for d, name in ((d, n) for d in datasets for n in names):
        if part not in d._today:
            d._today[part] = d.ranks(SWEEP["today"], part)
        base, got = d._today[part], d.ranks(SWEEP[name], part)
        write(f"{d.name:<12} {part:<5} {name:<27} R@1/5/10 {recalls(got)}  (today {recalls(base)}; "
              f"R@1 {sign_test(base, got, 1)}, R@10 {sign_test(base, got, 10)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=ROOT / "indexes" / "sweep",
                        help="where the network's raw outputs are cached")
    parser.add_argument("--datasets", default="flickr8k_1k,coco_mini")
    parser.add_argument("--check", choices=list(SWEEP), help="also print this setting on the check half")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    encoder = load_encoder(resolve_model("offline-default"))
    datasets = [Dataset(name, args.data, args.work, encoder) for name in args.datasets.split(",")]
    if args.check:
        report(datasets, "check", [args.check], lambda line: print(line, flush=True))
        return 0
    report(datasets, "fit", list(SWEEP), lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
