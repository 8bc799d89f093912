"""The vectors of one space in a Milvus collection (a cluster, or Milvus Lite embedded in a file).

The catalog stays the source of truth: a collection holds (catalog vector id, item id, vector)
rows, and `SpaceSet` fills it from the catalog and keeps it in step, as it does FAISS files.
pymilvus is imported on first use, so `import mmsearch` never loads it.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import numpy as np

from mmsearch.errors import MmsearchError
from mmsearch.store.vectors import VectorStore

log = logging.getLogger(__name__)

DEFAULT_INDEX = "FLAT"
"""Exact search: right for Milvus Lite and small collections. Clusters holding tens of millions
of vectors want HNSW, IVF_SQ8 or DISKANN (`milvus_index`, see docs/milvus.md)."""
_SEARCH_PARAMS: dict[str, dict[str, Any]] = {
    "IVF_FLAT": {"nprobe": 16}, "IVF_SQ8": {"nprobe": 16}, "IVF_PQ": {"nprobe": 32},
    "HNSW": {"ef": 128}, "DISKANN": {"search_list": 100},
}
_BUILD_PARAMS: dict[str, dict[str, Any]] = {
    "IVF_FLAT": {"nlist": 1024}, "IVF_SQ8": {"nlist": 1024}, "IVF_PQ": {"nlist": 1024, "m": 48},
    "HNSW": {"M": 32, "efConstruction": 200},
}
_INSERT_BATCH = 5000
_FILTER_IDS = 20_000
"""Above this many allowed ids, the filter is applied to a larger result instead of sent as an
`id in [...]` expression (Milvus limits expression size)."""
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


class MilvusError(MmsearchError):
    """Milvus could not be reached or refused an operation."""


def client(uri: str, token: str | None = None) -> Any:
    """One client per URI per process (Milvus Lite runs one embedded server per file)."""
    with _clients_lock:
        if uri not in _clients:
            try:
                from pymilvus import MilvusClient
            except ImportError as exc:
                raise MilvusError(
                    "vector_store = \"milvus\" needs pymilvus: pip install 'mmsearch[milvus]'."
                ) from exc
            try:
                _clients[uri] = MilvusClient(uri=uri, token=token or "")
            except Exception as exc:
                raise MilvusError(
                    f"Cannot connect to Milvus at {uri} ({exc}); check milvus_uri, or set "
                    "vector_store = \"faiss\"."
                ) from exc
        return _clients[uri]


def close_all() -> None:
    """Close every client this process opened (and so stop the Milvus Lite servers they run).
    For tests and program shutdown: close the `Library`s using Milvus first."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for milvus in clients:
        try:
            milvus.close()
        except Exception as exc:  # noqa: BLE001 - closing is best effort
            log.debug("closing a Milvus client: %s", exc)


def collection_name(prefix: str, space: str) -> str:
    """A valid collection name (letters, digits, underscores) for one space of one index."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}_{space}")


class MilvusStore(VectorStore):
    """One space's vectors in one collection: `id` (catalog vector id, primary key), `vector`."""

    def __init__(self, milvus: Any, name: str, dim: int, index_type: str = DEFAULT_INDEX) -> None:
        self.milvus = milvus
        self.name = name
        self.dim = dim
        self.index_type = index_type.upper()
        self.factory = f"milvus:{self.index_type}"

    # -- the collection ------------------------------------------------------------------------

    @classmethod
    def open(cls, milvus: Any, name: str, dim: int, index_type: str = DEFAULT_INDEX) -> MilvusStore | None:
        """The existing collection, or None when there is none (or it has another dimension)."""
        if not milvus.has_collection(name):
            return None
        fields = milvus.describe_collection(name).get("fields", [])
        dims = [f.get("params", {}).get("dim") for f in fields if f.get("name") == "vector"]
        if not dims or int(dims[0]) != dim:
            return None
        return cls(milvus, name, dim, index_type)

    @classmethod
    def create(cls, milvus: Any, name: str, dim: int, index_type: str = DEFAULT_INDEX) -> MilvusStore:
        """A new, empty collection (an old one of that name is dropped: the catalog refills it)."""
        from pymilvus import DataType, MilvusClient

        if milvus.has_collection(name):
            milvus.drop_collection(name)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        params = milvus.prepare_index_params()
        params.add_index(
            field_name="vector", index_type=index_type.upper(), metric_type="IP",
            params=_BUILD_PARAMS.get(index_type.upper(), {}),
        )
        milvus.create_collection(name, schema=schema, index_params=params, consistency_level="Strong")
        return cls(milvus, name, dim, index_type)

    def drop(self) -> None:
        self.milvus.drop_collection(self.name)

    # -- the interface -------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Upsert: adding an id again replaces it, so a catch-up repeated after a crash is harmless."""
        vectors = np.asarray(vectors, dtype=np.float32)
        for start in range(0, len(ids), _INSERT_BATCH):
            rows = [
                {"id": int(i), "vector": v}
                for i, v in zip(ids[start : start + _INSERT_BATCH], vectors[start : start + _INSERT_BATCH])
            ]
            self.milvus.upsert(self.name, rows)

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self.milvus.delete(self.name, ids=[int(i) for i in ids])

    def __len__(self) -> int:
        rows = self.milvus.query(self.name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        limit = max(1, min(k, 16384))
        expression = ""
        keep: set[int] | None = None
        if allowed is not None:
            if len(allowed) <= _FILTER_IDS:
                expression = f"id in [{','.join(str(int(i)) for i in allowed)}]"
            else:
                keep = {int(i) for i in allowed}
                limit = 16384
        params = {"metric_type": "IP", "params": _SEARCH_PARAMS.get(self.index_type, {})}
        results = self.milvus.search(
            self.name, data=queries.tolist(), limit=limit, filter=expression,
            search_params=params, output_fields=["id"],
        )
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row, hits in enumerate(results):
            chosen = [h for h in hits if keep is None or int(h["id"]) in keep][:k]
            for col, hit in enumerate(chosen):
                scores[row, col] = float(hit["distance"])
                ids[row, col] = int(hit["id"])
        return scores, ids

    def ids(self) -> np.ndarray:
        """Every id the collection holds (to reconcile it with the catalog)."""
        iterator = self.milvus.query_iterator(self.name, batch_size=10_000, output_fields=["id"])
        out: list[int] = []
        try:
            while batch := iterator.next():
                out += [int(row["id"]) for row in batch]
        finally:
            iterator.close()
        return np.asarray(sorted(out), dtype=np.int64)
