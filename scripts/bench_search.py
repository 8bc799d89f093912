"""Search latency at scale: end to end (encode + search + catalog lookup) and the search part
alone next to raw FAISS on the same vectors, in one run.

The collection is synthetic (clustered unit vectors written straight into a real catalog as
if they were indexed photos), so 100k items need no 100k photos; the query text goes through
the real text encoder of the chosen model.

Usage:
    .venv/bin/python scripts/bench_search.py [--sizes 10000 100000] [--queries 200]
        [--model offline-default]
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
    vectors = clustered(n, dim, seed=1)
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
    return statistics.median(ms), ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]


def timed(fn, repeats: int) -> list[float]:
    out = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


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
        raw_flat = timed(lambda i: flat.search(query_vecs[i % len(QUERIES)][None], 10), args.queries)
        # Recall of our index against exact search on the same vectors.
        _, exact_ids = flat.search(query_vecs, 10)
        _, our_ids = store.search(query_vecs, 10)
        recall = np.mean([len(set(exact_ids[q]) & set(our_ids[q])) / 10 for q in range(len(QUERIES))])

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
          f"recall@10 vs exact: {recall:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--model", default="offline-default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-") as tmp:
        for size in args.sizes:
            bench(size, args, Path(tmp))


if __name__ == "__main__":
    main()
