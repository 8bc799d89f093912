"""Vector stores side by side, in one run: FAISS exact, FAISS with the ANN index mmsearch picks
(`choose_factory`), and Milvus Lite (through pymilvus and `MilvusStore`, as mmsearch uses it).

For each size: insert seconds, single-query latency p50/p99, and recall@10 against exact
(numpy, on the same vectors). Vectors are synthetic clustered unit vectors (384-d, MiniLM's
size); queries are held-out noisy copies of collection vectors.

Usage:
    .venv/bin/python scripts/bench_store.py [--sizes 100000 1000000] [--queries 200]
        [--milvus-queries 50] [--milvus-index FLAT IVF_FLAT] [--skip-milvus-above N]
        [--milvus-uri http://host:19530]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from mmsearch.encoders.base import l2_normalise
from mmsearch.store.vectors import EXACT, NPROBE, FaissStore, VectorStore, choose_factory

DIM = 384
K = 10


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(8, n // 200), dim)).astype(np.float32)
    picks = rng.integers(0, len(centres), n)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):  # in blocks: the noise of 1M x 384 at once is 3 GB
        stop = min(n, start + 100_000)
        noise = rng.standard_normal((stop - start, dim)).astype(np.float32)
        out[start:stop] = l2_normalise(centres[picks[start:stop]] + 0.6 * noise)
    return out


def exact_top(vectors: np.ndarray, queries: np.ndarray, ids: np.ndarray) -> np.ndarray:
    out = []
    for q in queries:
        scores = vectors @ q
        top = np.argpartition(-scores, K)[:K]
        out.append(ids[top[np.argsort(-scores[top])]])
    return np.array(out)


def measure(store: VectorStore, queries: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """p50 ms, p99 ms, recall@10 of single queries."""
    store.search(queries[:1], K)  # warm up
    times, hits = [], 0
    for q, want in zip(queries, truth):
        began = time.perf_counter()
        _, got = store.search(q[None, :], K)
        times.append((time.perf_counter() - began) * 1000)
        hits += len(set(got[0].tolist()) & set(want.tolist()))
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return statistics.median(times), p99, hits / (K * len(queries))


def timed(build: Callable[[], VectorStore]) -> tuple[VectorStore, float]:
    began = time.perf_counter()
    store = build()
    return store, time.perf_counter() - began


def blocks(ids: np.ndarray, vectors: np.ndarray, size: int = 50_000):
    for start in range(0, len(ids), size):
        yield ids[start : start + size], vectors[start : start + size]


def faiss_store(factory: str, ids: np.ndarray, vectors: np.ndarray) -> VectorStore:
    store = FaissStore.build(DIM, factory, blocks(ids, vectors))
    # As mmsearch wires it (the catalog's vectors there, these in-memory ones here): a quantised
    # index re-scores its candidates with the float vectors. The ids are 3, 6, 9, ...
    store.exact_vectors = lambda wanted: (wanted, vectors[wanted // 3 - 1])
    return store


def milvus_store(
    folder: Path, uri: str | None, index_type: str, ids: np.ndarray, vectors: np.ndarray
) -> VectorStore:
    from mmsearch.store.milvus import MilvusStore, client

    milvus = client(uri or str(folder / f"bench-{index_type}.db"))
    store = MilvusStore.create(milvus, "mmsearch_bench", DIM, index_type)
    for block_ids, block in blocks(ids, vectors):
        store.add(block_ids, block)
    store.milvus.flush("mmsearch_bench")
    len(store)  # waits until the rows are visible
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200, help="queries for the FAISS stores")
    parser.add_argument("--milvus-queries", type=int, default=50,
                        help="queries for Milvus Lite (its exact search is slow at 1M)")
    parser.add_argument("--milvus-index", nargs="*", default=["FLAT", "IVF_FLAT"])
    parser.add_argument("--milvus-uri", help="a Milvus server (http://host:19530) instead of "
                        "Milvus Lite; the collection mmsearch_bench is dropped and recreated")
    parser.add_argument("--skip-milvus-above", type=int, default=10**9,
                        help="skip Milvus Lite for collections larger than this")
    args = parser.parse_args()

    rows = []
    for n in args.sizes:
        print(f"-- {n} x {DIM}: making vectors ...", flush=True)
        vectors = clustered(n, DIM, seed=1)
        ids = np.arange(1, n + 1, dtype=np.int64) * 3  # sparse, like catalog ids
        rng = np.random.default_rng(2)
        picks = rng.integers(0, n, args.queries)
        queries = l2_normalise(vectors[picks] + 0.3 * rng.standard_normal((args.queries, DIM)).astype(np.float32))
        truth = exact_top(vectors, queries, ids)
        ann = choose_factory(n, DIM, exact_below=50_000)
        cases: list[tuple[str, Callable[[], VectorStore], int]] = [
            (f"FAISS {EXACT}", partial(faiss_store, EXACT, ids, vectors), args.queries),
            (f"FAISS {ann}" + (f" nprobe {NPROBE}" if ann != EXACT else ""),
             partial(faiss_store, ann, ids, vectors), args.queries),
        ]
        folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
        if n <= args.skip_milvus_above:
            for index_type in args.milvus_index:
                cases.append((f"Milvus Lite {index_type}",
                              partial(milvus_store, folder, args.milvus_uri, index_type, ids, vectors),
                              args.milvus_queries))
        for name, build, n_queries in cases:
            print(f"   {name}: inserting ...", flush=True)
            store, seconds = timed(build)
            p50, p99, recall = measure(store, queries[:n_queries], truth[:n_queries])
            row = (n, name, seconds, p50, p99, recall, n_queries)
            rows.append(row)
            print(f"   {name}: insert {seconds:.1f} s, p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
                  f"recall@10 {recall:.3f} ({n_queries} queries)", flush=True)
            del store
            gc.collect()
        shutil.rmtree(folder, ignore_errors=True)

    print("\n| N x dim | store | insert s | p50 ms | p99 ms | recall@10 | queries |")
    print("|---|---|---|---|---|---|---|")
    for n, name, seconds, p50, p99, recall, n_queries in rows:
        print(f"| {n:,} x {DIM} | {name} | {seconds:.1f} | {p50:.2f} | {p99:.2f} | {recall:.3f} | {n_queries} |")


if __name__ == "__main__":
    main()
