"""Vector stores: one interface, FAISS behind it here (a Milvus backend can stand beside it).

Vectors are L2-normalised float32, compared by inner product (= cosine). Ids are the catalog's
vector ids, so a hit maps straight back to its item.
"""

from __future__ import annotations

import logging
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

EXACT = "IDMap2,Flat"
NPROBE = 16
"""IVF lists visited per query: recall@10 0.98-0.99 at 100k in MEASURED.md, for ~0.3 ms."""
_TRAIN_SAMPLE = 100_000
COMPRESS_ABOVE_BYTES = 1_000_000_000
"""Float vectors past this size are held as scalar-quantised codes (a quarter or less)."""
REFINE_CANDIDATES = 100
"""Candidates a quantised index re-scores with the exact float vectors: its codes alone cap
recall@10 at ~0.967 whatever nprobe (1M x 384, SQ8); the top 100 re-scored give 1.0 there, and
as much as IVF,Flat (0.997) on vectors shaped like real caption embeddings, where 50 do too.
Each costs a catalog row read (~1 ms per 100 at 1M): more buys nothing measurable."""

ExactVectors = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""ids -> (the ids found, their float32 vectors): where a quantised index re-reads candidates."""


class VectorStore(ABC):
    """A searchable set of (id, vector) pairs of one dimension."""

    dim: int
    factory: str

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under the given int64 ids (ids must be new)."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> None:
        """Remove the given ids; unknown ids are ignored."""

    @abstractmethod
    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids), each (n_queries, k); missing slots have id -1.

        `allowed`, when given, restricts the search to those ids (filters).
        """

    @abstractmethod
    def __len__(self) -> int: ...


def choose_factory(n: int, dim: int, exact_below: int) -> str:
    """The FAISS index for `n` vectors: exact below `exact_below`, else IVF, quantised when large.

    nlist is a power of two near 4*sqrt(n), so the choice (and a rebuild) changes only when
    the collection roughly quadruples, not on every run.
    """
    if n < exact_below:
        return EXACT
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    # Above ~1 GB of flat vectors, scalar quantisation keeps the index at a quarter or less; the
    # candidates are then re-scored with the exact vectors (`FaissStore.exact_vectors`), which
    # wins back the recall the codes lose.
    coding = scalar_code(dim) if n * dim * 4 > COMPRESS_ABOVE_BYTES else "Flat"
    return f"IVF{nlist},{coding}"


def scalar_code(dim: int) -> str:
    """The finest FAISS scalar quantiser whose code stays near 400 bytes a vector: 8 bits up to
    400-d (the offline default's 384-d), 6 bits up to 533-d (OpenCLIP's 512-d), else 4 bits."""
    for bits in (8, 6):
        if dim * bits <= 400 * 8:
            return f"SQ{bits}"
    return "SQ4"


def is_quantised(factory: str) -> bool:
    """Whether an index keeps lossy codes (its scores are approximate) rather than the floats."""
    coding = factory.rpartition(",")[2]
    return coding.startswith(("SQ", "PQ"))


def _faiss() -> Any:
    import faiss

    return faiss


class FaissStore(VectorStore):
    """A FAISS index on CPU, mirrored to the GPUs for search when FAISS sees any."""

    def __init__(self, index: Any, factory: str) -> None:
        self.index = index
        self.factory = factory
        self.dim = int(index.d)
        self._gpu_index: Any = None
        self.exact_vectors: ExactVectors | None = None
        """Set by the owner (the catalog's `vectors_by_id`): a quantised index then fetches
        `candidates` candidates and ranks them by their exact cosines."""
        self.candidates = REFINE_CANDIDATES

    # -- building -----------------------------------------------------------------------------

    @classmethod
    def empty(cls, dim: int) -> FaissStore:
        faiss = _faiss()
        return cls(faiss.index_factory(dim, EXACT, faiss.METRIC_INNER_PRODUCT), EXACT)

    @classmethod
    def build(
        cls, dim: int, factory: str, blocks: Iterable[tuple[np.ndarray, np.ndarray]]
    ) -> FaissStore:
        """Build an index of type `factory` from (ids, vectors) blocks, training it if needed."""
        faiss = _faiss()
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        if factory != EXACT:
            # IVF ids are native; training needs the vectors in memory (a sample is enough).
            all_ids, all_vecs = _concat(blocks, dim)
            sample = all_vecs
            if len(sample) > _TRAIN_SAMPLE:
                pick = np.random.default_rng(0).choice(len(sample), _TRAIN_SAMPLE, replace=False)
                sample = sample[np.sort(pick)]
            index.train(sample)
            index.add_with_ids(all_vecs, all_ids)
        else:
            for ids, vecs in blocks:
                index.add_with_ids(np.ascontiguousarray(vecs), ids)
        return cls(index, factory)

    # -- the interface ------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self.index.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64)
        )
        self._gpu_index = None

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        faiss = _faiss()
        self.index.remove_ids(faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))
        self._gpu_index = None

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        faiss = _faiss()
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(k, len(self)))
        if len(self) == 0:
            n = len(queries)
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        params = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
            if self.factory == EXACT:
                params = faiss.SearchParameters(sel=selector)
            else:
                params = faiss.SearchParametersIVF(sel=selector, nprobe=NPROBE)
        elif self.factory != EXACT:
            params = faiss.SearchParametersIVF(nprobe=NPROBE)
        index = self.index if params is not None and allowed is not None else self._search_index()
        rescore = self.exact_vectors is not None and is_quantised(self.factory)
        fetch = min(max(k, self.candidates), len(self)) if rescore else k
        # One query is memory-bound and stalls when threads contend for the 2nd core;
        # batches still gain from every thread (measured: MEASURED.md).
        threads = faiss.omp_get_max_threads()
        if len(queries) == 1:
            faiss.omp_set_num_threads(1)
        try:
            scores, ids = index.search(queries, fetch, params=params)
        finally:
            faiss.omp_set_num_threads(threads)
        if rescore:
            return self._rescored(queries, ids, k)
        return scores, ids

    def _rescored(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top k of each row of candidates by exact inner product with the float vectors.
        Candidates whose vectors are gone (deleted since the index was saved) drop out."""
        assert self.exact_vectors is not None
        wanted = np.unique(candidates[candidates >= 0])
        found, vectors = self.exact_vectors(wanted)
        order = np.argsort(found)
        found, vectors = found[order], vectors[order]
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_ids = np.full((len(queries), k), -1, dtype=np.int64)
        if len(found) == 0:
            return out_scores, out_ids
        for row, (query, cand) in enumerate(zip(queries, candidates)):
            cand = cand[cand >= 0]
            at = np.searchsorted(found, cand)
            at = at[(at < len(found)) & (found[np.minimum(at, len(found) - 1)] == cand)]
            if len(at) == 0:
                continue
            # einsum, not `@`: a BLAS call wakes its thread pool, which stalls a single query
            # by milliseconds when the other core is busy (200 x 384 needs no threads).
            exact = np.einsum("ij,j->i", vectors[at], query)
            top = np.argsort(-exact, kind="stable")[:k]
            out_scores[row, : len(top)] = exact[top]
            out_ids[row, : len(top)] = found[at[top]]
        return out_scores, out_ids

    def _search_index(self) -> Any:
        faiss = _faiss()
        if faiss.get_num_gpus() <= 0:
            return self.index
        if self._gpu_index is None:
            self._gpu_index = faiss.index_cpu_to_all_gpus(self.index)
        return self._gpu_index

    # -- persistence --------------------------------------------------------------------------

    def ids(self) -> np.ndarray | None:
        """Every id held, for an exact index (None for IVF, whose ids are spread over lists)."""
        if self.factory != EXACT:
            return None
        return _faiss().vector_to_array(self.index.id_map).astype(np.int64)

    def damage(self) -> str | None:
        """Why the vectors cannot be trusted (not unit length, not finite), or None.

        Checks every vector of an exact index (~20 ms at 50k x 384): damage inside the vectors
        leaves a file loadable but returns wrong neighbours and impossible scores.
        """
        if self.factory != EXACT or len(self) == 0:
            return None
        faiss = _faiss()
        flat = faiss.downcast_index(self.index.index)
        vectors = faiss.rev_swig_ptr(flat.get_xb(), len(self) * self.dim).reshape(-1, self.dim)
        norms = np.einsum("ij,ij->i", vectors, vectors)
        bad = ~np.isfinite(norms) | (np.abs(norms - 1.0) > 1e-3)
        if bad.any():
            return f"{int(bad.sum())} of {len(self)} vectors are not unit length"
        return None

    def save(self, path: Path) -> None:
        """Write atomically: a temp file in the same folder, fsync, then rename over `path`.

        On failure (a full disk) the temp file is removed and the old file is left as it was.
        """
        faiss = _faiss()
        write_atomic(path, lambda tmp: faiss.write_index(self.index, str(tmp)))

    @classmethod
    def load(cls, path: Path, factory: str) -> FaissStore:
        """Raises RuntimeError (FAISS's) for a file that is not a readable index."""
        return cls(_faiss().read_index(str(path)), factory)


def _concat(
    blocks: Iterable[tuple[np.ndarray, np.ndarray]], dim: int
) -> tuple[np.ndarray, np.ndarray]:
    ids_parts, vec_parts = [], []
    for ids, vecs in blocks:
        ids_parts.append(ids)
        vec_parts.append(vecs)
    if not ids_parts:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    return np.concatenate(ids_parts), np.ascontiguousarray(np.concatenate(vec_parts))


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to disk, for crash-safe renames."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write `path` through `write(temp file)` in the same folder, fsync, then rename over it:
    a crash leaves the old file or the new one. On failure (a full disk) the temp file is
    removed and the old file is left as it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
