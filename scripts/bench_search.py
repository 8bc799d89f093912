"""Search latency at scale: end to end (encode + search + catalog lookup) and the search part
alone next to raw FAISS on the same vectors, in one run.

The collection is synthetic (clustered unit vectors written straight into a real catalog as
if they were indexed photos), so 100k items need no 100k photos; the query text goes through
the real text encoder of the chosen model.

At the largest size it also measures other FAISS factory strings on the same vectors (raw
FAISS, one thread, the way mmsearch runs single queries): p50/p99, recall@10 against exact search
on held-out vectors drawn like the collection, bytes per vector and build time, so the index the
project should pick at that size can be read off one run.

Usage:
    .venv/bin/python scripts/bench_search.py [--sizes 10000 100000 1000000] [--queries 200]
        [--model offline-default] [--alternatives IVF4096,SQ8@32 IVF4096,SQ8@64 ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from mmsearch import Library
from mmsearch.config import Settings
from mmsearch.encoders.base import SEMANTIC, l2_normalise
from mmsearch.encoders.registry import default_cutoffs
from mmsearch.query.search import Query, Searcher
from mmsearch.store.catalog import ItemFacts
from mmsearch.store.vectors import EXACT, NPROBE

# Goal of issue 10 at 1M items: p50 <= 15 ms end to end, recall@10 >= 0.98, <= 420 bytes/vector.
# Queries drawn like the collection but not in it, for recall against exact search.
HELD_OUT = 500
DEFAULT_ALTERNATIVES = ["IVF4096,SQ8@16", "IVF4096,SQ8@32", "IVF4096,SQ8@64", "IVF4096,SQ8@128",
                        "IVF4096,Flat@64"]

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


def fill(lib: Library, n: int, dim: int) -> None:
    """Write n synthetic image items with semantic vectors through the catalog's own writer."""
    lib._spaces.load()
    lib._spaces.ensure({SEMANTIC: dim})
    vectors = clustered(n + HELD_OUT, dim, seed=1)[:n]
    catalog = lib._catalog
    for start in range(0, n, 5000):
        with catalog.write():
            for i in range(start, min(n, start + 5000)):
                facts = ItemFacts(f"/synthetic/{i // 1000}/img{i:07d}.jpg", "/synthetic", "image",
                                  100_000, i, f"h{i}", width=640, height=480)
                catalog.write_item(facts, {SEMANTIC: vectors[i : i + 1]})
        lib._spaces.refresh()  # the in-memory index catches up with the commit, as ingest's does
    lib._spaces.save()


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


def held_out_recall(index, exact, queries: np.ndarray, params=None) -> float:
    _, want = exact.search(queries, 10)
    _, got = index.search(queries, 10, params=params)
    return float(np.mean([len(set(want[q]) & set(got[q])) / 10 for q in range(len(queries))]))


def alternatives(vectors: np.ndarray, exact, query_vecs: np.ndarray, args) -> None:
    """Raw FAISS on the same vectors for each `FACTORY@nprobe`: latency, recall, bytes, build."""
    import faiss

    held_out = clustered(len(vectors) + HELD_OUT, vectors.shape[1], seed=1)[len(vectors):]
    print(f"\n   other indexes on the same {len(vectors):,} vectors (raw FAISS; recall@10 vs exact on "
          f"{len(held_out)} held-out vectors and on the {len(query_vecs)} text queries):")
    built: dict[str, tuple] = {}
    for spec in args.alternatives:
        factory, _, nprobe_text = spec.partition("@")
        nprobe = int(nprobe_text or NPROBE)
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
        lat = timed(lambda i, index=index, params=params: index.search(
            query_vecs[i % len(query_vecs)][None], 10, params=params), args.queries)
        p50, p99 = percentiles(lat)
        r_held = held_out_recall(index, exact, held_out, params)
        r_text = held_out_recall(index, exact, query_vecs, params)
        print(f"   {factory + ' nprobe ' + str(nprobe):<28} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
              f"recall@10 {r_held:.3f} (text {r_text:.3f})  {size / len(vectors):6.0f} B/vector  "
              f"build {build_s:5.1f} s")


def bench(size: int, args: argparse.Namespace, workdir: Path) -> None:
    settings = Settings(index=workdir / f"idx{size}")
    with Library.open(settings.index_path(), model=args.model, settings=settings) as lib:
        dim = lib.encoder().spaces[SEMANTIC]
        t = time.perf_counter()
        fill(lib, size, dim)
        build = time.perf_counter() - t
    # Reopen as a user would: the saved index is loaded from disk.
    with Library.open(settings.index_path(), settings=settings) as lib:
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
        # ... and the same IVF probe count as mmsearch uses.
        raw_params = None if store.factory == EXACT else faiss.SearchParametersIVF(nprobe=NPROBE)
        raw_same = timed(
            lambda i: store.index.search(query_vecs[i % len(QUERIES)][None], 10, params=raw_params),
            args.queries,
        )
        flat = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        for ids, vecs in lib._catalog.iter_vectors(SEMANTIC, dim):
            flat.add_with_ids(vecs, ids)
        our_bytes = index_bytes(store.index)
        raw_flat = timed(lambda i: flat.search(query_vecs[i % len(QUERIES)][None], 10), args.queries)
        # Recall of our index against exact search on the same vectors.
        _, exact_ids = flat.search(query_vecs, 10)
        _, our_ids = store.search(query_vecs, 10)
        recall = np.mean([len(set(exact_ids[q]) & set(our_ids[q])) / 10 for q in range(len(QUERIES))])
        held_out = clustered(size + HELD_OUT, dim, seed=1)[size:]
        _, want = flat.search(held_out, 10)
        _, got = store.search(held_out, 10)
        recall_held = float(np.mean([len(set(want[q]) & set(got[q])) / 10 for q in range(len(held_out))]))

    print(f"\n== {size:,} items x {dim}-d, index {store.factory}, {args.queries} queries "
          f"(filled in {build:.1f} s)")
    rows = [
        ("end to end (encode + search + catalog)", end_to_end),
        ("  text encode alone", encode_only),
        ("  mmsearch search part (FAISS + id->item lookup)", ours),
        (f"  raw FAISS, same index ({store.factory})", raw_same),
        ("  raw FAISS IndexFlatIP (exact, 1 thread)", raw_flat),
    ]
    for name, samples in rows:
        p50, p99 = percentiles(samples)
        print(f"{name:<52} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
    ours50, raw50 = percentiles(ours)[0], percentiles(raw_same)[0]
    print(f"search part / raw FAISS same index (p50): {ours50 / raw50:.2f}x; "
          f"recall@10 vs exact: {recall_held:.3f} on {HELD_OUT} held-out vectors, {recall:.3f} on the "
          f"{len(QUERIES)} text queries; {our_bytes / size:.0f} bytes per vector")
    if size == max(args.sizes) and args.alternatives:
        exact = faiss.IndexFlatIP(dim)
        vectors = clustered(size + HELD_OUT, dim, seed=1)[:size]
        exact.add(vectors)
        alternatives(vectors, exact, query_vecs, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--model", default="offline-default")
    parser.add_argument("--alternatives", nargs="*", default=DEFAULT_ALTERNATIVES,
                        help="FACTORY@NPROBE strings measured on the largest size (none: skip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-") as tmp:
        for size in args.sizes:
            bench(size, args, Path(tmp))


if __name__ == "__main__":
    main()
