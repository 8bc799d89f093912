"""Search latency at scale: end to end (encode + search + catalog lookup) and the search part
alone next to raw FAISS on the same vectors, in one run, with the index mmsearch picks itself
at each size (`choose_factory`), its bytes per vector and its build time.

SHORTCUT, stated plainly: the collection is synthetic. Clustered unit vectors are GENERATED, not
encoded from files, and written into a real catalog through the catalog's own writer
(`Catalog.write_item`, one transaction per 5,000 items, the in-memory index catching up after
each commit, as ingest's commits do), so 1M items need no 1M photos. Everything after the vectors
is the product's code: the index is built from the catalog by `SpaceSet` exactly as after an
indexing run, the query text goes through the real text encoder of the chosen model, and
searches go through `Library.search`.

The filled catalog is kept in indexes/bench/ (git-ignored) and reused by later runs of the same
size (filling 1M items takes ~15-20 min on these machines: per item ~11 SQL statements in
`write_item`); `--fresh` fills it again. The index is rebuilt from the catalog on every run so
its build time is measured.

Bytes per vector count the FAISS index (what a search holds in memory). Quantised indexes
re-score their top candidates with the float vectors the catalog keeps anyway (for rebuilds);
those stay on disk and are printed separately (catalog bytes per item).

At the largest size it also measures other FAISS factory strings on the same vectors (raw
FAISS, one thread, the way mmsearch runs single queries): p50/p99, recall@10 against exact search
on held-out vectors drawn like the collection, bytes per vector and build time, so the index the
project should pick at that size can be read off one run. `FACTORY@NPROBE+R` re-scores the top R
candidates exactly (with the floats in memory here).

Usage:
    .venv/bin/python scripts/bench_search.py [--sizes 10000 100000 1000000] [--queries 200]
        [--model offline-default] [--fresh] [--alternatives IVF4096,SQ8@16 IVF4096,SQ8@16+200 ...]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from mmsearch import Library
from mmsearch.config import Settings
from mmsearch.encoders.base import SEMANTIC, l2_normalise
from mmsearch.encoders.registry import default_cutoffs
from mmsearch.query.search import Query, Searcher
from mmsearch.store.catalog_items import ItemFacts
from mmsearch.store.vectors import EXACT, NPROBE, REFINE_CANDIDATES, is_quantised

# Goal of issue 10 at 1M items: p50 <= 15 ms end to end, recall@10 >= 0.98, <= 420 bytes/vector.
# Queries drawn like the collection but not in it, for recall against exact search.
HELD_OUT = 500
DEFAULT_ALTERNATIVES = ["IVF4096,SQ8@16", "IVF4096,SQ8@64", "IVF4096,SQ8@16+100", "IVF4096,SQ8@16+200",
                        "IVF4096,SQ4@16+200", "IVF4096,Flat@16"]
BENCH_DIR = Path(__file__).resolve().parent.parent / "indexes" / "bench"
FILLED = "bench_filled"
"""Catalog meta key: the size and dimension a finished fill wrote (a killed fill lacks it)."""

QUERIES = [
    "a cat sleeping on a sofa", "a red car in the street", "people on the beach at sunset",
    "a bowl of fruit", "snow on the mountains", "a dog catching a frisbee", "a city at night",
    "a plate of pasta", "children playing football", "an old steam train",
]


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(8, n // 200), dim)).astype(np.float32)
    picks = rng.integers(0, len(centres), n)
    return l2_normalise(centres[picks] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32))


def fill(lib: Library, vectors: np.ndarray) -> None:
    """Write synthetic image items with semantic vectors through the catalog's own writer."""
    n, dim = vectors.shape
    lib._spaces.load()
    lib._spaces.ensure({SEMANTIC: dim})
    catalog = lib._catalog
    for start in range(0, n, 5000):
        with catalog.write():
            for i in range(start, min(n, start + 5000)):
                facts = ItemFacts(f"/synthetic/{i // 1000}/img{i:07d}.jpg", "/synthetic", "image",
                                  100_000, i, f"h{i}", width=640, height=480)
                catalog.write_item(facts, {SEMANTIC: vectors[i : i + 1]})
        lib._spaces.refresh()  # the in-memory index catches up with the commit, as ingest's does
    catalog.set_meta(FILLED, f"{n}x{dim}")


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return statistics.median(ms), ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]


def timed(fn, repeats: int) -> list[float]:
    out = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def index_bytes(index) -> int:
    """Serialised size of a FAISS index (what the .faiss file would take)."""
    import faiss

    return int(faiss.serialize_index(index).size)


class Rescored:
    """Raw FAISS search, optionally re-scoring the top `rescore` candidates with float vectors."""

    def __init__(self, index, params, vectors: np.ndarray, rescore: int) -> None:
        self.index, self.params, self.vectors, self.rescore = index, params, vectors, rescore

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.index.search(queries, max(k, self.rescore), params=self.params)
        if not self.rescore:
            return scores, ids
        out = np.full((len(queries), k), -1, dtype=np.int64)
        for row, (query, cand) in enumerate(zip(queries, ids)):
            cand = cand[cand >= 0]
            out[row, : min(k, len(cand))] = cand[np.argsort(-(self.vectors[cand] @ query))[:k]]
        return scores[:, :k], out


def alternatives(vectors: np.ndarray, held_out: np.ndarray, exact, query_vecs: np.ndarray, args) -> None:
    """Raw FAISS on the same vectors for each `FACTORY@nprobe[+R]`: latency, recall, bytes, build."""
    import faiss

    print(f"\n   other indexes on the same {len(vectors):,} vectors (raw FAISS; recall@10 vs exact on "
          f"{len(held_out)} held-out vectors and on the {len(query_vecs)} text queries):")
    built: dict[str, tuple] = {}
    for spec in args.alternatives:
        factory, _, probe_text = spec.partition("@")
        nprobe_text, _, rescore_text = probe_text.partition("+")
        nprobe = int(nprobe_text or NPROBE)
        rescore = int(rescore_text or 0)
        if factory not in built:
            faiss.omp_set_num_threads(2)  # builds use both cores, as mmsearch's do
            t = time.perf_counter()
            index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
            sample = vectors[np.random.default_rng(0).choice(len(vectors), min(len(vectors), 100_000), replace=False)]
            index.train(sample)
            index.add(vectors)
            built[factory] = (index, time.perf_counter() - t, index_bytes(index))
        index, build_s, size = built[factory]
        faiss.omp_set_num_threads(1)
        params = faiss.SearchParametersIVF(nprobe=nprobe)
        searcher = Rescored(index, params, vectors, rescore)
        lat = timed(lambda i, searcher=searcher: searcher.search(query_vecs[i % len(query_vecs)][None], 10),
                    args.queries)
        p50, p99 = percentiles(lat)
        r_held = recall(exact, searcher, held_out)
        r_text = recall(exact, searcher, query_vecs)
        name = f"{factory} nprobe {nprobe}" + (f" +exact top {rescore}" if rescore else "")
        print(f"   {name:<36} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
              f"recall@10 {r_held:.3f} (text {r_text:.3f})  {size / len(vectors):6.0f} B/vector  "
              f"build {build_s:5.1f} s")


def prepared(size: int, args: argparse.Namespace, drawn: np.ndarray) -> tuple[Settings, float | None]:
    """The bench's index folder of `size` items, filled now (and the fill's seconds) or reused."""
    folder = BENCH_DIR / f"search-{size}-{args.model.replace(':', '_').replace('/', '_')}"
    settings = Settings(index=folder)
    dim = drawn.shape[1]
    if folder.exists() and not args.fresh:
        with Library.open(folder, settings=settings) as lib:
            if lib._catalog.get_meta(FILLED) == f"{size}x{dim}":
                return settings, None
    shutil.rmtree(folder, ignore_errors=True)
    with Library.open(folder, model=args.model, settings=settings) as lib:
        t = time.perf_counter()
        fill(lib, drawn[:size])
        return settings, time.perf_counter() - t


def bench(size: int, args: argparse.Namespace) -> None:
    with Library.open(BENCH_DIR / "probe", model=args.model, settings=Settings(index=BENCH_DIR / "probe")) as lib:
        dim = lib.encoder().spaces[SEMANTIC]
    t = time.perf_counter()
    drawn = clustered(size + HELD_OUT, dim, seed=1)
    draw_s = time.perf_counter() - t
    settings, fill_s = prepared(size, args, drawn)
    # The index mmsearch picks for this size, built from the catalog's vectors and saved, as at
    # the end of an indexing run that grew the collection (`SpaceSet.save` re-picks and rebuilds).
    with Library.open(settings.index_path(), settings=settings) as lib:
        t = time.perf_counter()
        lib._spaces.rebuild_all()
        build = time.perf_counter() - t
    # Reopen as a user would: the saved index is loaded from disk.
    with Library.open(settings.index_path(), settings=settings, readonly=True) as lib:
        encoder = lib.encoder()
        lib.search(QUERIES[0])  # warm-up: loads the FAISS file and the model
        with lib._spaces.reading() as stores:
            store = stores[SEMANTIC]
        query_vecs = encoder.embed_texts(QUERIES)
        searcher = Searcher(lib._catalog, lib._spaces, lib.encoder, settings, default_cutoffs(lib.spec))

        end_to_end = timed(lambda i: lib.search(QUERIES[i % len(QUERIES)], k=10, min_score=-1), args.queries)
        encode_only = timed(lambda i: encoder.embed_texts([QUERIES[i % len(QUERIES)]]), args.queries)
        ours = timed(
            lambda i: searcher._search_space(
                SEMANTIC, query_vecs[i % len(QUERIES)], Query(text="x", k=10, min_score=-1)
            ),
            args.queries,
        )
        import faiss

        # Raw FAISS gets its best single-query setting too: one OpenMP thread (MEASURED.md).
        faiss.omp_set_num_threads(1)
        # ... and the same IVF probe count as mmsearch uses (codes only: no exact re-scoring).
        raw_params = None if store.factory == EXACT else faiss.SearchParametersIVF(nprobe=NPROBE)
        raw_same = timed(
            lambda i: store.index.search(query_vecs[i % len(QUERIES)][None], 10, params=raw_params),
            args.queries,
        )
        flat = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        for ids, vecs in lib._catalog.iter_vectors(SEMANTIC, dim):
            flat.add_with_ids(vecs, ids)
        our_bytes = index_bytes(store.index)
        catalog_bytes = sum(p.stat().st_size for p in settings.index_path().glob("catalog.db*"))
        raw_flat = timed(lambda i: flat.search(query_vecs[i % len(QUERIES)][None], 10), args.queries)
        # Recall of our index (as mmsearch searches it) against exact search on the same vectors.
        recall_text = recall(flat, store, query_vecs)
        recall_held = recall(flat, store, drawn[size:])
        recall_codes = None
        if is_quantised(store.factory):  # what the codes alone would give
            rescoring, store.exact_vectors = store.exact_vectors, None
            recall_codes = recall(flat, store, drawn[size:])
            store.exact_vectors = rescoring

    filled = "catalog reused from an earlier run" if fill_s is None else f"catalog filled in {fill_s:.0f} s"
    print(f"\n== {size:,} items x {dim}-d, index {store.factory} (mmsearch's pick), {args.queries} queries; "
          f"vectors generated in {draw_s:.0f} s, {filled}, index built from the catalog and saved in "
          f"{build:.1f} s")
    rows = [
        ("end to end (encode + search + catalog)", end_to_end),
        ("  text encode alone", encode_only),
        ("  mmsearch search part (FAISS + id->item lookup)", ours),
        (f"  raw FAISS, same index, codes only ({store.factory})", raw_same),
        ("  raw FAISS IndexFlatIP (exact, 1 thread)", raw_flat),
    ]
    for name, samples in rows:
        p50, p99 = percentiles(samples)
        print(f"{name:<52} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
    ours50, raw50 = percentiles(ours)[0], percentiles(raw_same)[0]
    print(f"search part / raw FAISS same index (p50): {ours50 / raw50:.2f}x")
    print(f"recall@10 vs exact: {recall_held:.3f} on {HELD_OUT} held-out vectors, {recall_text:.3f} on the "
          f"{len(QUERIES)} text queries"
          + ("" if recall_codes is None else
             f" (codes alone, without re-scoring the top {REFINE_CANDIDATES}: {recall_codes:.3f})"))
    print(f"index (in memory): {our_bytes / size:.0f} bytes per vector; catalog on disk (items, text, "
          f"float vectors{', read back for re-scoring' if recall_codes is not None else ''}): "
          f"{catalog_bytes / size:.0f} bytes per item")
    if size == max(args.sizes) and args.alternatives:
        exact = faiss.IndexFlatIP(dim)
        exact.add(drawn[:size])
        alternatives(drawn[:size], drawn[size:], exact, query_vecs, args)


def recall(exact, store, queries: np.ndarray) -> float:
    _, want = exact.search(queries, 10)
    _, got = store.search(queries, 10)
    return float(np.mean([len(set(want[q]) & set(got[q])) / 10 for q in range(len(queries))]))


def caption_collection(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Real caption embeddings of ../shared/data (flickr8k_1k, coco_mini) in the model's semantic
    space: (the collection's seeds, 500 held-out captions used as text queries)."""
    import csv

    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    captions = []
    for name in ("flickr8k_1k", "coco_mini"):
        with (data / name / "manifest.csv").open(newline="") as f:
            captions += [row["caption"] for row in csv.DictReader(f)]
    probe = BENCH_DIR / "probe"
    with Library.open(probe, model=args.model, settings=Settings(index=probe)) as lib:
        encoder = lib.encoder()
        vecs = np.concatenate([encoder.embed_texts(captions[i : i + 64]) for i in range(0, len(captions), 64)])
    order = np.random.default_rng(2).permutation(len(vecs))
    return vecs[order[HELD_OUT:]], vecs[order[:HELD_OUT]]


def real_check(n: int, args: argparse.Namespace) -> None:
    """Recall of mmsearch's quantised store on a collection shaped like real embeddings.

    SHORTCUT, stated plainly: n vectors are drawn around real caption embeddings (each a real
    caption's vector plus Gaussian noise with the captions' own covariance, cosine ~0.85 to its
    seed), since ../shared/data holds ~3k captions, not 1M items. The queries are 500 real
    captions that seeded nothing. The store is `FaissStore` as mmsearch builds and searches it,
    re-scoring from the float vectors (in memory here, from the catalog in mmsearch)."""
    from mmsearch.store.vectors import FaissStore, scalar_code

    seeds, queries = caption_collection(args)
    rng = np.random.default_rng(3)
    centred = seeds - seeds.mean(0)
    cov = centred.T @ centred / len(seeds) + 1e-6 * np.eye(seeds.shape[1])
    noise = rng.standard_normal((n, seeds.shape[1])).astype(np.float32) @ np.linalg.cholesky(cov).T.astype(np.float32)
    noise *= 0.6 / np.sqrt(np.mean(np.einsum("ij,ij->i", noise, noise)))
    vectors = l2_normalise(seeds[rng.integers(0, len(seeds), n)] + noise).astype(np.float32)
    ids = np.arange(n, dtype=np.int64)
    import faiss

    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    nlist = 2 ** round(np.log2(4 * np.sqrt(n)))
    print(f"\n== real-shaped check: {n:,} vectors around {len(seeds):,} real caption embeddings, "
          f"{len(queries)} held-out real captions as queries")
    for factory in (f"IVF{nlist},Flat", f"IVF{nlist},{scalar_code(vectors.shape[1])}"):
        store = FaissStore.build(vectors.shape[1], factory, [(ids, vectors)])
        rows: list[tuple[str, int]] = [("", 0)]
        if factory.endswith(scalar_code(vectors.shape[1])):
            rows += [(f" + exact re-scoring of the top {c}", c) for c in (50, 100, REFINE_CANDIDATES)]
        for label, candidates in rows:
            store.candidates = candidates
            store.exact_vectors = (lambda wanted: (wanted, vectors[wanted])) if candidates else None
            lat = timed(lambda i, store=store: store.search(queries[i % len(queries)], 10), args.queries)
            p50, p99 = percentiles(lat)
            print(f"   {factory + label:<50} recall@10 {recall(exact, store, queries):.3f}  "
                  f"p50 {p50:5.2f} ms  p99 {p99:5.2f} ms  {index_bytes(store.index) / n:4.0f} B/vector")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--model", default="offline-default")
    parser.add_argument("--fresh", action="store_true", help="fill the catalogs again (else reused)")
    parser.add_argument("--alternatives", nargs="*", default=DEFAULT_ALTERNATIVES,
                        help="FACTORY@NPROBE strings measured on the largest size (none: skip)")
    parser.add_argument("--real-check", type=int, default=0, metavar="N",
                        help="also check recall on N vectors shaped like real caption embeddings")
    args = parser.parse_args()
    print("SHORTCUT: the collections are generated clustered vectors, not encoded files (see the "
          "docstring); index, queries and search are mmsearch's own.")
    for size in args.sizes:
        bench(size, args)
    if args.real_check:
        real_check(args.real_check, args)


if __name__ == "__main__":
    main()
