"""The vector spaces of one index folder: their FAISS files, kept in step with the catalog.

`manifest.json` records, for every space, the index type, count, checksum and the highest
catalog vector id the file holds. Vector ids only grow, so whatever was committed after a file
was saved is exactly the catalog's vectors with larger ids: a reader loads the file and adds
those ("catches up") instead of rebuilding, which is what lets searches run while another
process indexes. Vectors deleted since the save stay in memory until the next save, and searches
drop them when they map them back to items. A file that is missing, damaged or unreadable is
rebuilt from the catalog's vectors, so the catalog stays the single source of truth and nothing
is re-encoded.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.store.catalog import Catalog
from mmsearch.store.manifest import (
    MANIFEST,
    MANIFEST_FORMAT,
    file_sha256,
    file_stamp,
    file_xxh3,
    read_manifest,
    write_json_atomic,
)
from mmsearch.store.vectors import EXACT, FaissStore, VectorStore, choose_factory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MilvusOptions:
    """Where the vectors go when `vector_store = "milvus"`."""

    uri: str
    token: str | None = None
    index_type: str = "FLAT"


_PREFIX_KEY = "milvus_prefix"


class SpaceSet:
    """The vector stores of an index, loaded on first use, refreshed when the catalog moved on.

    Thread-safe: one lock guards the stores, so searches in several threads and a writer in
    another can share it.
    """

    def __init__(
        self,
        folder: Path,
        catalog: Catalog,
        exact_below: int,
        about: dict[str, Any],
        *,
        readonly: bool = False,
        milvus: MilvusOptions | None = None,
    ) -> None:
        """`about` goes into every manifest written (the model spec, the writer's version).
        With `milvus`, each space's vectors live in a Milvus collection instead of a FAISS
        file (readers that find no collection search an in-memory copy built from the catalog)."""
        self.folder = folder
        self.catalog = catalog
        self.exact_below = exact_below
        self.about = about
        self.readonly = readonly
        self.milvus = milvus
        self._lock = threading.RLock()
        self._stores: dict[str, VectorStore] | None = None
        self._max_id: dict[str, int] = {}  # the highest catalog vector id held, per space
        self._generation: int | None = None  # the catalog generation the stores reflect
        self._manifest_stamp: tuple[int, int] | None = None  # the manifest they were loaded from
        self._dirty = False  # stores differ from their files: save() has work to do
        self.rebuilt: list[str] = []  # spaces that had to be rebuilt from the catalog

    @property
    def dims(self) -> dict[str, int]:
        raw = self.catalog.get_meta("spaces")
        return {k: int(v) for k, v in json.loads(raw).items()} if raw else {}

    @contextmanager
    def reading(self) -> Iterator[dict[str, VectorStore]]:
        """The stores, up to date with the last commit and held still while in use."""
        with self._lock:
            self.refresh()
            assert self._stores is not None
            yield self._stores

    def refresh(self) -> None:
        """Catch up with the catalog; cheap (one small query and a stat) when nothing changed."""
        with self._lock:
            if self._stores is None or file_stamp(self.folder / MANIFEST) != self._manifest_stamp:
                # First use, or another process saved new files (which also drop what it deleted).
                self._stores = self._load()
            elif self.catalog.generation() != self._generation:
                self._catch_up(self._stores)

    def load(self) -> None:
        """Load (or rebuild) every store now. Writers call this before changing the catalog."""
        self.refresh()

    def _loaded(self) -> dict[str, VectorStore]:
        if self._stores is None:
            raise RuntimeError("SpaceSet.load() must run before the catalog is changed")
        return self._stores

    # -- loading ------------------------------------------------------------------------------

    def _load(self) -> dict[str, VectorStore]:
        self._manifest_stamp = file_stamp(self.folder / MANIFEST)
        manifest = read_manifest(self.folder)
        entries = manifest.get("spaces", {})
        generation = self.catalog.generation()
        saved_generation = manifest.get("generation")
        stores: dict[str, VectorStore] = {}
        for space, dim in self.dims.items():
            entry = entries.get(space, {})
            load_one = self._load_milvus if self.milvus else self._load_one
            store, why = load_one(space, dim, entry)
            max_id = entry.get("max_id")
            if store is not None and max_id is None:
                # Format 1 recorded no max_id: usable only if nothing was committed since.
                if saved_generation == generation:
                    max_id = self.catalog.max_vector_id(space)
                else:
                    store, why = None, "it predates the last commit"
            if store is None:
                if entry or self.catalog.vector_count(space):
                    log.warning(
                        "rebuilding the %s vector index from the catalog: %s%s", space, why,
                        "" if self.readonly else " (saved at the end of this run)",
                    )
                    self.rebuilt.append(space)
                store, max_id = self._rebuild(space, dim), self.catalog.max_vector_id(space)
                self._dirty = True
            stores[space] = store
            self._max_id[space] = int(max_id or 0)
        self._generation = None
        self._catch_up(stores)
        return stores

    # -- Milvus -------------------------------------------------------------------------------

    def _milvus_client(self) -> Any:
        from mmsearch.store.milvus import client

        assert self.milvus is not None
        return client(self.milvus.uri, self.milvus.token)

    def _collection(self, space: str, *, claim: bool) -> str | None:
        """The collection name of a space: a prefix claimed once per index (in the catalog), so
        several indexes can share one Milvus."""
        from mmsearch.store.milvus import collection_name

        prefix = self.catalog.get_meta(_PREFIX_KEY)
        if prefix is None and claim:
            prefix = self.catalog.claim_meta(_PREFIX_KEY, f"mmsearch_{uuid.uuid4().hex[:12]}")
        return None if prefix is None else collection_name(prefix, space)

    def _load_milvus(self, space: str, dim: int, entry: dict[str, Any]) -> tuple[VectorStore | None, str]:
        from mmsearch.store.milvus import MilvusStore

        assert self.milvus is not None
        name = self._collection(space, claim=False)
        if name is None:
            return None, "no Milvus collection was made for this index yet"
        if entry.get("collection") != name:
            return None, f"the manifest does not list collection {name}"
        store = MilvusStore.open(self._milvus_client(), name, dim, self.milvus.index_type)
        if store is None:
            return None, f"Milvus has no collection {name} of {dim}-d vectors"
        if len(store) < int(entry.get("count") or 0):  # lost writes (a Milvus Lite crash)
            return None, f"collection {name} holds fewer vectors than were saved"
        return store, ""

    def _exact(self, store: FaissStore) -> FaissStore:
        """`store`, re-scoring its candidates with the catalog's float vectors when it keeps
        quantised codes: the catalog holds every vector anyway (for rebuilds) and commits them
        with their items, so the re-scoring data can never disagree with the index's ids."""
        store.exact_vectors = partial(self.catalog.vectors_by_id, dim=store.dim)
        return store

    def _new_store(self, space: str, dim: int) -> VectorStore:
        if self.milvus is None or self.readonly:
            return self._exact(FaissStore.empty(dim))
        from mmsearch.store.milvus import MilvusStore

        name = self._collection(space, claim=True)
        assert name is not None
        return MilvusStore.create(self._milvus_client(), name, dim, self.milvus.index_type)

    def _load_one(self, space: str, dim: int, entry: dict[str, Any]) -> tuple[VectorStore | None, str]:
        """The saved store of a space, or None and why it cannot be used."""
        path = self.folder / f"{space}.faiss"
        if not entry:
            return None, "the manifest does not list it"
        if not path.is_file():
            return None, f"{path.name} is missing"
        # Every load checks the whole file: a file damaged in place keeps its size and mtime and
        # would otherwise answer searches wrongly until `mmsearch doctor` ran. xxh3 makes that
        # cheap; a manifest written before it had only sha256, which is checked instead (and the
        # next save writes the fast one).
        if "xxh3" in entry:
            if file_xxh3(path) != entry["xxh3"]:
                return None, f"{path.name} does not match its checksum (damaged in place?)"
        else:
            if file_sha256(path) != entry.get("sha256"):
                return None, f"{path.name} does not match its checksum (damaged in place?)"
            if not self.readonly:
                self._dirty = True
        try:
            store = self._exact(FaissStore.load(path, entry["factory"]))
        except (RuntimeError, OSError, MemoryError) as exc:
            return None, f"{path.name} cannot be read ({str(exc).splitlines()[0][:120]})"
        if store.dim != dim or store.dim != entry.get("dim"):
            return None, f"{path.name} holds {store.dim}-d vectors, not {dim}-d"
        damage = store.damage()
        if damage:
            return None, f"{path.name} is damaged: {damage}"
        return store, ""

    def _catch_up(self, stores: dict[str, VectorStore]) -> None:
        """Add what was committed since the stores were saved or last caught up. A reader does
        not write into a Milvus collection: the writer fills it as it commits."""
        generation = self.catalog.generation()
        for space, dim in self.dims.items():
            if space not in stores:
                stores[space] = self._new_store(space, dim)
            store = stores[space]
            if self.readonly and not isinstance(store, FaissStore):
                continue
            last = self._max_id.get(space, 0)
            for ids, vectors in self.catalog.iter_vectors(space, dim, start_after=last):
                store.add(ids, vectors)
                last = int(ids[-1])
                self._dirty = True
            self._max_id[space] = last
        self._generation = generation

    def _rebuild(self, space: str, dim: int) -> VectorStore:
        if self.milvus is not None and not self.readonly:
            store = self._new_store(space, dim)
            for ids, vectors in self.catalog.iter_vectors(space, dim):
                store.add(ids, vectors)
            return store
        count = self.catalog.vector_count(space)
        factory = choose_factory(count, dim, self.exact_below)
        return self._exact(FaissStore.build(dim, factory, self.catalog.iter_vectors(space, dim)))

    def _reconcile(self, space: str, store: VectorStore) -> VectorStore:
        """Drop vectors the catalog no longer has (left by a run that stopped before saving)."""
        if len(store) == self.catalog.vector_count(space):
            return store
        held = store.ids()  # type: ignore[attr-defined]
        if held is None:  # IVF keeps no id list to compare: rebuild from the catalog
            return self._rebuild(space, store.dim)
        store.remove(np.setdiff1d(held, self.catalog.vector_ids(space), assume_unique=True))
        return store

    # -- writing ------------------------------------------------------------------------------

    def ensure(self, dims: dict[str, int]) -> None:
        """Declare the model's spaces (first indexing run); existing ones must agree."""
        with self._lock:
            known = self.dims
            merged = {**known, **dims}
            if merged != known:
                self.catalog.set_meta("spaces", json.dumps(merged))
                stores = self._loaded()
                for space, dim in dims.items():
                    if space not in stores:
                        stores[space] = self._new_store(space, dim)
                self._dirty = True

    def remove(self, ids: list[int]) -> None:
        """Drop vectors that a commit deleted from the catalog."""
        if not ids:
            return
        arr = np.asarray(ids, dtype=np.int64)
        with self._lock:
            for store in self._loaded().values():
                store.remove(arr)
            self._dirty = True

    def clean_temp_files(self) -> None:
        """Remove temp files a run left when it was killed or the disk filled up."""
        for tmp in self.folder.glob("*.tmp"):
            tmp.unlink(missing_ok=True)

    def save(self) -> None:
        """Re-pick each index type for its size (rebuilding if it changed), save, write manifest.

        Does nothing when no store changed since it was loaded or saved (a re-run with no changes).
        """
        if self.readonly:
            return
        with self._lock:
            self.refresh()
            if not self._dirty:
                return
            stores = self._loaded()
            entries = {}
            for space in list(stores):
                store = self._reconcile(space, stores[space])
                if not isinstance(store, FaissStore):
                    stores[space] = store
                    entries[space] = self._milvus_entry(space, store)
                    continue
                factory = choose_factory(len(store), store.dim, self.exact_below)
                if factory != store.factory:
                    log.info("%s: %s -> %s for %d vectors", space, store.factory, factory, len(store))
                    store = self._rebuild(space, store.dim)
                stores[space] = store
                path = self.folder / f"{space}.faiss"
                store.save(path)
                stat = path.stat()
                entries[space] = {
                    "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns,
                    "dim": store.dim,
                    "factory": store.factory,
                    "count": len(store),
                    "max_id": self._max_id.get(space, 0),
                    "file": path.name,
                    "sha256": file_sha256(path),
                    "xxh3": file_xxh3(path),
                    "exact": store.factory == EXACT,
                }
            import faiss

            manifest = {
                **self.about,
                "format": MANIFEST_FORMAT,
                "generation": self._generation,
                "saved_at": time.time(),
                "faiss_version": faiss.__version__,
                "spaces": entries,
            }
            write_json_atomic(self.folder / MANIFEST, manifest)
            self._manifest_stamp = file_stamp(self.folder / MANIFEST)
            self._dirty = False

    def _milvus_entry(self, space: str, store: VectorStore) -> dict[str, Any]:
        return {
            "backend": "milvus",
            "collection": getattr(store, "name", ""),
            "dim": store.dim,
            "factory": store.factory,
            "count": len(store),
            "max_id": self._max_id.get(space, 0),
        }

    def rebuild_all(self) -> None:
        """Rebuild every store from the catalog and save (`mmsearch doctor --repair`)."""
        with self._lock:
            self._stores = {space: self._rebuild(space, dim) for space, dim in self.dims.items()}
            self._max_id = {space: self.catalog.max_vector_id(space) for space in self._stores}
            self._generation = self.catalog.generation()
            self._dirty = True
            self.save()

    # -- checking -----------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Everything wrong with the saved vector files, checked in full (`mmsearch doctor`):
        checksums, readability, damaged vectors, and counts against the catalog."""
        out: list[str] = []
        manifest_path = self.folder / MANIFEST
        manifest = read_manifest(self.folder)
        if manifest_path.exists() and not manifest:
            out.append(f"{MANIFEST} is unreadable or not a valid manifest")
        entries = manifest.get("spaces", {})
        for space, dim in self.dims.items():
            path = self.folder / f"{space}.faiss"
            entry = entries.get(space)
            expected = self.catalog.vector_count(space)
            if not entry:
                if expected:
                    out.append(f"{path.name}: not listed in {MANIFEST}")
                continue
            if entry.get("backend") == "milvus":
                out += self._milvus_problems(space, dim, entry, expected)
                continue
            if not path.is_file():
                out.append(f"{path.name}: missing")
                continue
            if file_sha256(path) != entry["sha256"]:
                out.append(f"{path.name}: checksum does not match {MANIFEST} (damaged or replaced)")
            try:
                store = FaissStore.load(path, entry["factory"])
            except (RuntimeError, OSError, MemoryError) as exc:
                out.append(f"{path.name}: cannot be read ({str(exc).splitlines()[0][:120]})")
                continue
            damage = store.damage()
            if damage:
                out.append(f"{path.name}: {damage}")
            if store.dim != dim:
                out.append(f"{path.name}: {store.dim}-d vectors, the catalog says {dim}-d")
            behind = self.catalog.max_vector_id(space) > int(entry.get("max_id") or 0)
            if len(store) != expected and not behind:
                out.append(f"{path.name}: {len(store)} vectors, the catalog has {expected}")
        for tmp in self.folder.glob("*.tmp"):
            out.append(f"{tmp.name}: a temp file left by an interrupted run")
        return out

    def _milvus_problems(self, space: str, dim: int, entry: dict[str, Any], expected: int) -> list[str]:
        if self.milvus is None:
            message = (
                f"{space}: its vectors are in Milvus ({entry['collection']}) but the settings say "
                'vector_store = "faiss" (set it back, or `mmsearch doctor --repair`)'
            )
            return [message]
        store, why = self._load_milvus(space, dim, entry)
        if store is None:
            return [f"{space}: {why}"]
        behind = self.catalog.max_vector_id(space) > int(entry.get("max_id") or 0)
        if len(store) != expected and not behind:
            return [f"{entry['collection']}: {len(store)} vectors, the catalog has {expected}"]
        return []
