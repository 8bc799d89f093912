"""The vector spaces of one index folder: their FAISS files, kept in step with the catalog.

`manifest.json` records, for every space, the index type, count, checksum and the catalog
generation it reflects. A space whose file is missing, damaged or behind the catalog (say the
run that wrote the catalog was killed before saving it) is rebuilt from the catalog's vectors,
so the catalog stays the single source of truth and nothing is re-encoded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.store.catalog import Catalog
from mmsearch.store.vectors import EXACT, FaissStore, choose_factory, fsync_path

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        log.warning("%s is unreadable; vector indexes will be rebuilt from the catalog", path)
        return {}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class SpaceSet:
    """The vector stores of an index, loaded on first use and saved with the manifest."""

    def __init__(
        self, folder: Path, catalog: Catalog, exact_below: int, about: dict[str, Any]
    ) -> None:
        """`about` goes into every manifest written (the model spec, the writer's version)."""
        self.folder = folder
        self.catalog = catalog
        self.exact_below = exact_below
        self.about = about
        self._stores: dict[str, FaissStore] | None = None
        self._dirty = False  # stores differ from their files: save() has work to do
        self.rebuilt: list[str] = []  # spaces the last load had to rebuild from the catalog

    @property
    def dims(self) -> dict[str, int]:
        raw = self.catalog.get_meta("spaces")
        return {k: int(v) for k, v in json.loads(raw).items()} if raw else {}

    def stores(self) -> dict[str, FaissStore]:
        """The loaded stores; loads them on first use (read-only callers)."""
        if self._stores is None:
            self._stores = self._load()
        return self._stores

    def load(self) -> None:
        """Load (or rebuild) every store now. Writers call this before changing the catalog:
        a store rebuilt lazily after a commit would already hold what the writer then adds."""
        self.stores()

    def _loaded(self) -> dict[str, FaissStore]:
        if self._stores is None:
            raise RuntimeError("SpaceSet.load() must run before the catalog is changed")
        return self._stores

    def get(self, space: str) -> FaissStore | None:
        return self.stores().get(space)

    def _load(self) -> dict[str, FaissStore]:
        manifest = read_manifest(self.folder)
        entries = manifest.get("spaces", {})
        generation = self.catalog.generation()
        stores = {}
        for space, dim in self.dims.items():
            entry = entries.get(space, {})
            store = self._load_one(space, entry, manifest.get("generation"), generation)
            if store is None and not entry and self.catalog.vector_count(space) == 0:
                store = FaissStore.empty(dim)  # a new space: nothing to rebuild
            if store is None:
                log.warning("rebuilding the %s vector index from the catalog", space)
                self.rebuilt.append(space)
                store = self._rebuild(space, dim)
                self._dirty = True
            stores[space] = store
        return stores

    def _load_one(
        self, space: str, entry: dict[str, Any], saved_generation: Any, generation: int
    ) -> FaissStore | None:
        path = self.folder / f"{space}.faiss"
        if not entry or saved_generation != generation or not path.is_file():
            return None
        stat = path.stat()
        # Hashing a large index on every open would dominate a command-line search; a file whose
        # size and mtime are as saved is trusted, any other is checked against its checksum.
        unchanged = (stat.st_size, stat.st_mtime_ns) == (entry.get("size"), entry.get("mtime_ns"))
        if not unchanged and file_sha256(path) != entry.get("sha256"):
            log.warning("%s does not match its checksum in %s", path, MANIFEST)
            return None
        store = FaissStore.load(path, entry["factory"])
        if len(store) != self.catalog.vector_count(space):
            return None
        return store

    def _rebuild(self, space: str, dim: int) -> FaissStore:
        count = self.catalog.vector_count(space)
        factory = choose_factory(count, dim, self.exact_below)
        return FaissStore.build(dim, factory, self.catalog.iter_vectors(space, dim))

    def ensure(self, dims: dict[str, int]) -> None:
        """Declare the model's spaces (first indexing run); existing ones must agree."""
        known = self.dims
        merged = {**known, **dims}
        if merged != known:
            self.catalog.set_meta("spaces", json.dumps(merged))
            stores = self._loaded()
            for space, dim in dims.items():
                stores.setdefault(space, FaissStore.empty(dim))
            self._dirty = True

    def add(self, space: str, ids: list[int], vectors: np.ndarray) -> None:
        self._loaded()[space].add(np.asarray(ids, dtype=np.int64), vectors)
        self._dirty = True

    def remove(self, ids: list[int]) -> None:
        if not ids:
            return
        arr = np.asarray(ids, dtype=np.int64)
        for store in self._loaded().values():
            store.remove(arr)
        self._dirty = True

    def save(self) -> None:
        """Re-pick each index type for its size (rebuilding if it changed), save, write manifest.

        Does nothing when no store changed since it was loaded or saved (a re-run with no changes).
        """
        if not self._dirty:
            return
        entries = {}
        for space, store in self.stores().items():
            factory = choose_factory(len(store), store.dim, self.exact_below)
            if factory != store.factory:
                log.info("%s: %s -> %s for %d vectors", space, store.factory, factory, len(store))
                store = self._rebuild(space, store.dim)
                self.stores()[space] = store
            path = self.folder / f"{space}.faiss"
            store.save(path)
            stat = path.stat()
            entries[space] = {
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "dim": store.dim,
                "factory": store.factory,
                "count": len(store),
                "file": path.name,
                "sha256": file_sha256(path),
                "exact": store.factory == EXACT,
            }
        import faiss

        manifest = {
            **self.about,
            "format": MANIFEST_FORMAT,
            "generation": self.catalog.generation(),
            "saved_at": time.time(),
            "faiss_version": faiss.__version__,
            "spaces": entries,
        }
        write_json_atomic(self.folder / MANIFEST, manifest)
        self._dirty = False
