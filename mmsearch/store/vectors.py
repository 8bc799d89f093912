"""Vector stores: one interface, FAISS behind it here (a Milvus backend can stand beside it).

Vectors are L2-normalised float32, compared by inner product (= cosine). Ids are the catalog's
vector ids, so a hit maps straight back to its item.
"""

from __future__ import annotations

import logging
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

EXACT = "IDMap2,Flat"
NPROBE = 16
"""IVF lists visited per query: recall@10 0.98-0.99 at 100k in MEASURED.md, for ~0.3 ms."""
_TRAIN_SAMPLE = 100_000


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
    """The FAISS index for `n` vectors: exact below `exact_below`, else IVF with SQ8 when large.

    nlist is a power of two near 4*sqrt(n), so the choice (and a rebuild) changes only when
    the collection roughly quadruples, not on every run.
    """
    if n < exact_below:
        return EXACT
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    # Above ~1 GB of flat vectors, 8-bit scalar quantisation keeps memory at a quarter for a
    # recall cost of about 1-2 points (measured in MEASURED.md).
    coding = "SQ8" if n * dim * 4 > 1_000_000_000 else "Flat"
    return f"IVF{nlist},{coding}"


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

    # -- building -----------------------------------------------------------------------------

    @classmethod
    def empty(cls, dim: int) -> "FaissStore":
        faiss = _faiss()
        return cls(faiss.index_factory(dim, EXACT, faiss.METRIC_INNER_PRODUCT), EXACT)

    @classmethod
    def build(
        cls, dim: int, factory: str, blocks: Iterable[tuple[np.ndarray, np.ndarray]]
    ) -> "FaissStore":
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
        # One query is memory-bound and stalls when threads contend for the 2nd core;
        # batches still gain from every thread (measured: MEASURED.md).
        threads = faiss.omp_get_max_threads()
        if len(queries) == 1:
            faiss.omp_set_num_threads(1)
        try:
            scores, ids = index.search(queries, k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)
        return scores, ids

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
        tmp = path.with_name(path.name + ".tmp")
        try:
            faiss.write_index(self.index, str(tmp))
            fsync_path(tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_path(path.parent)

    @classmethod
    def load(cls, path: Path, factory: str) -> "FaissStore":
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
