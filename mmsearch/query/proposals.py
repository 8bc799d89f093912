"""Images proposed to the reranker beyond the first stage's top N, and the stores behind them.

`MappedImages` keeps every image mapped by an `ImageMap` in memory, kept current by the
catalog generation; `PooledRegions` (no training: each image's regions pooled into one vector)
and `TunedAdapter` (the map `mmsearch tune` learnt from the collection's captions) are the two
maps. Their best matches for a query's words join the N (`Reranker.propose`).
"""

from __future__ import annotations

import json
import logging
import threading
import zipfile
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from mmsearch.encoders.base import VISUAL, Encoder, l2_normalise
from mmsearch.encoders.onnx_cache import atomic_path
from mmsearch.errors import IndexFormatError
from mmsearch.media import IMAGE
from mmsearch.query.head import HEAD_FILE, HeadScorer
from mmsearch.query.words import content_words, image_word_vectors
from mmsearch.store.catalog import Catalog

log = logging.getLogger(__name__)

ADAPTER_PROPOSALS = 25
"""Images a tuned adapter adds to the reranker's N: its best matches for the query among every
indexed image, where the first stage missed them (`Reranker.propose`). The first stage's top 50
held the right photo for 62 % of flickr8k_1k's captions; with the adapter's top 25 (fitted on
the other folds' captions) 83 %, with its top 50 89 % (numpy on the eval index)."""
WEIGHTS_FILE = "rerank.npz"
PROVENANCE_FILE = "rerank.json"
POOLED_FILE = "pooled-regions.npz"


class ImageMap(Protocol):
    """How `MappedImages` turns indexed images into unit vectors in the text space."""

    def map_images(
        self, catalog: Catalog, vector_ids: np.ndarray, items: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """For images' `visual` vector ids (ascending) and their item ids: (the positions of
        those it maps, their unit vectors)."""
        ...


_MAP_BATCH = 10_000
"""Images mapped per read of the catalog (a batch of `visual` vectors is 51 MB at 1280-d)."""


class MappedImages:
    """Every indexed image as one vector in the text space (an `ImageMap`: a tuned adapter's
    map of its `visual` features, or its pooled regions), kept in memory so the reranker can
    propose images the first stage missed. Brought up to date when the catalog's generation
    moves: images committed since are read and mapped (`visual` vector ids only grow; a changed
    file gets new ones), deleted ones dropped. 1.5 KB per image (384 float32). `tune` stores an
    adapter's with it (`TunedAdapter.save`, in float16), so a search in a new process maps only
    the images indexed since: mapping all of them again took 335 ms for 2,000 images (cifar10,
    while two evaluations ran)."""

    def __init__(
        self, vector_ids: np.ndarray | None = None, items: np.ndarray | None = None,
        mapped: np.ndarray | None = None, seen: int | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._vector_ids = np.zeros(0, np.int64) if vector_ids is None else vector_ids
        self._items = np.zeros(0, np.int64) if items is None else items
        self._mapped = np.zeros((0, 0), np.float32) if mapped is None else mapped
        # Vector ids up to this one were looked at; some (an image without regions) map to nothing.
        held = int(self._vector_ids[-1]) if len(self._vector_ids) else -1
        self._seen = held if seen is None else max(seen, held)

    def refresh(self, image_map: ImageMap, catalog: Catalog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Map the images indexed since the last look (`tune` does so before saving); returns
        the (vector ids, item ids, mapped vectors) now held, rows alike."""
        with self._lock:
            self._update(image_map, catalog)
            return self._vector_ids, self._items, self._mapped

    @property
    def seen(self) -> int:
        """The last `visual` vector id looked at (mapped or not)."""
        with self._lock:
            return self._seen

    def stored(self) -> dict[str, np.ndarray]:
        """The arrays `TunedAdapter.save` and `PooledRegions.save` write (and give back to the constructor)."""
        with self._lock:
            return {
                "image_vector_ids": self._vector_ids, "image_items": self._items,
                "image_vectors": self._mapped.astype(np.float16),
                "image_ids_seen": np.array(self._seen, np.int64),
            }

    def best(
        self, image_map: ImageMap, catalog: Catalog, query_vector: np.ndarray, k: int,
        allowed: np.ndarray | None, exclude: Collection[int],
    ) -> list[int]:
        """The ids of the `k` images whose mapped vectors best match the query, among the
        `visual` vector ids `allowed` (None: all), leaving out `exclude`."""
        ids, items, mapped = self.refresh(image_map, catalog)
        if not len(ids) or not mapped.size:
            return []
        scores = mapped @ np.asarray(query_vector, np.float32)
        keep = np.ones(len(ids), bool)
        if allowed is not None:
            keep &= np.isin(ids, allowed)
        if exclude:
            keep &= ~np.isin(items, np.fromiter(exclude, np.int64))
        scores = np.where(keep, scores, -np.inf)
        found: list[int] = []
        for row in np.argsort(-scores, kind="stable"):
            if not np.isfinite(scores[row]) or len(found) == k:
                break
            if int(items[row]) not in found:  # an image with several visual rows counts once
                found.append(int(items[row]))
        return found

    def vectors(self, image_map: ImageMap, catalog: Catalog, items: Sequence[int]) -> dict[int, np.ndarray]:
        """item id -> its mapped unit vector (its first `visual` row), for those of `items`
        that are indexed images."""
        _, ids, mapped = self.refresh(image_map, catalog)
        out: dict[int, np.ndarray] = {}
        for row in np.where(np.isin(ids, np.asarray(items, np.int64)))[0]:
            out.setdefault(int(ids[row]), mapped[row])
        return out

    def _update(self, image_map: ImageMap, catalog: Catalog) -> None:
        generation = catalog.generation()
        if generation == self._generation:
            return
        current = catalog.vector_ids(VISUAL)
        kept = np.isin(self._vector_ids, current)
        ids, items, mapped = [self._vector_ids[kept]], [self._items[kept]], [self._mapped[kept]]
        fresh = current[current > self._seen]
        for start in range(0, len(fresh), _MAP_BATCH):
            chunk = fresh[start : start + _MAP_BATCH]
            owners = catalog.vector_owners(chunk.tolist())
            images = chunk[[owners.get(int(vid), (0, ""))[1] == IMAGE for vid in chunk]]
            if not len(images):
                continue
            owner_items = np.array([owners[int(vid)][0] for vid in images], np.int64)
            rows, vectors = image_map.map_images(catalog, images, owner_items)
            ids.append(images[rows])
            items.append(owner_items[rows])
            mapped.append(vectors)
        nonempty = [m for m in mapped if m.size]
        self._vector_ids = np.concatenate(ids)
        self._items = np.concatenate(items)
        self._mapped = np.concatenate(nonempty).astype(np.float32, copy=False) if nonempty else np.zeros((0, 0), np.float32)
        if len(fresh):
            self._seen = int(fresh[-1])
        self._generation = generation


POOLED_PROPOSALS = 25
"""Images the pooled regions add to the reranker's N, zero-shot (`PooledRegions`). On
flickr8k_1k (numpy on the eval index, the product's fusion) R@1 / R@10 .123 / .388 without,
.124 / .400 with 10, .126 / .406 with 25, .125 / .407 with 40."""


POOLED_MAX_IMAGES = 250_000
"""Past this many images the pooled regions propose nothing: they would hold 1.5 KB per image in
memory (375 MB here) and a search would scan them all; a vector index of them would be the way."""


class PooledRegions:
    """Every indexed image's regions pooled into one vector (`Encoder.pooled_regions`): the
    mean of what its cells show, which names more of the picture than the first stage's vector
    (a cameraman's whole image reads "tripod", "harmonica"; its cells add "ballplayer", "suit").
    The query's content words are matched with it, each on its own as the regions are, and its
    best images join the reranker's N (`Reranker.propose`), with no training. On flickr8k_1k
    the first stage's top 50 held the right photo for 62 % of the captions; its top 25 by
    pooled regions add 7 points (numpy on the eval index). Only models that pool their regions
    (the offline label bridge) propose.

    Pooling reads every image's regions (0.31-0.42 ms per image, measured while evaluations
    ran), so the writer stores the pooled vectors in the index folder after indexing (`save`,
    `POOLED_FILE`) and a search in a new process pools only the images indexed since."""

    def __init__(self, encoder: Callable[[], Encoder], folder: Path | None = None) -> None:
        self._encoder = encoder
        self._folder = folder
        self._images: MappedImages | None = None
        self._lock = threading.Lock()
        self._saved: tuple[int, int, int] | None = None
        self._counted: tuple[int, int] | None = None  # (catalog generation, images)

    @property
    def available(self) -> bool:
        return self._encoder().pooled_regions(()) is not None

    @property
    def images(self) -> MappedImages:
        """The pooled images, read from the index folder's cache on first use."""
        with self._lock:
            if self._images is None:
                self._images = self._load()
            return self._images

    def _load(self) -> MappedImages:
        if self._folder is None or not (self._folder / POOLED_FILE).is_file():
            return MappedImages()
        try:
            with np.load(self._folder / POOLED_FILE, allow_pickle=False) as data:
                ids = data["image_vector_ids"].astype(np.int64)
                items = data["image_items"].astype(np.int64)
                vectors = data["image_vectors"].astype(np.float32)
                seen = int(data["image_ids_seen"])
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:  # only a cache: pooled again
            log.warning("Ignoring %s (%s); the images' regions are pooled again.", self._folder / POOLED_FILE, exc)
            return MappedImages()
        if len(items) != len(ids) or vectors.ndim != 2 or len(vectors) != len(ids):
            return MappedImages()
        images = MappedImages(ids, items, vectors, seen)
        self._saved = _signature(ids, images.seen)
        return images

    def save(self, catalog: Catalog) -> None:
        """Pool the images indexed since and store them all in the index folder (the writer,
        after indexing); nothing is written when they did not change. The model is loaded
        only when there are images to pool: a re-run that changed nothing does not load it."""
        if self._folder is None or self._too_many(catalog):
            return
        ids, _, _ = self.images.refresh(self, catalog)
        state = _signature(ids, self.images.seen)
        if state == self._saved or (self._saved is None and state == _signature(ids[:0], -1)):
            return  # unchanged, or nothing to pool at all
        with atomic_path(self._folder / POOLED_FILE) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **self.images.stored())
        self._saved = state

    def _too_many(self, catalog: Catalog) -> bool:
        generation = catalog.generation()
        if self._counted is None or self._counted[0] != generation:
            self._counted = (generation, catalog.vector_count(VISUAL))
        return self._counted[1] > POOLED_MAX_IMAGES

    def map_images(
        self, catalog: Catalog, vector_ids: np.ndarray, items: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        stored = catalog.item_regions(np.unique(items).tolist())
        rows = np.array([n for n, item in enumerate(items) if int(item) in stored], np.int64)
        if not len(rows):  # without regions: the model need not be loaded
            return rows, np.zeros((0, 0), np.float32)
        pooled = self._encoder().pooled_regions([stored[int(items[n])] for n in rows])
        if pooled is None:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        has = np.linalg.norm(pooled, axis=1) > 0  # regions this model cannot pool
        return rows[has], pooled[has]

    def best(
        self, catalog: Catalog, text: str, query_vector: np.ndarray, k: int,
        allowed: np.ndarray | None, exclude: Collection[int],
    ) -> list[int]:
        """The `k` images whose pooled regions best match the query's content words (the mean
        of each word's cosine, in the model's image template as for regions; the whole query's
        vector when it has none), among the `visual` vector ids `allowed` (None: all)."""
        if self._too_many(catalog):
            return []
        encoder = self._encoder()
        words = content_words(text)
        if words:
            vector = image_word_vectors(encoder, words).mean(axis=0)
        else:
            vector = np.asarray(query_vector, np.float32)
        return self.images.best(self, catalog, vector, k, allowed, exclude)


def _signature(vector_ids: np.ndarray, seen: int) -> tuple[int, int, int]:
    """Which images a cache holds and how far it looked: ids are unique and only grow, so
    count and sum tell."""
    return len(vector_ids), int(vector_ids.sum()), seen


@dataclass(frozen=True)
class TunedAdapter:
    """What `mmsearch tune` learnt on a collection's own captions and turned on (see
    `mmsearch/tune.py`): the trained cross-attention head, a linear adapter of `visual`
    features into the text space, or both. A part that did not help is absent (`head` None,
    adapter `weight` 0 with empty arrays)."""

    mean: np.ndarray
    """(visual dim,) subtracted from `visual` vectors before the map."""
    scale: np.ndarray
    """(visual dim,) divides them after."""
    matrix: np.ndarray
    """(visual dim, text dim)."""
    bias: np.ndarray
    """(text dim,)."""
    weight: float
    """Weight of the adapter's z-scored cosine in the fusion (0: no adapter)."""
    region_weight: float
    """Weight of the region score (the head's when there is one) in the fusion."""
    head: HeadScorer | None = None
    """The trained head (`HEAD_FILE`), run instead of the zero-shot late interaction."""
    own_vector_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Sorted ids of the `visual` vectors of the images the map was fitted on (the captioned
    images) when it was fitted: a file changed since has new ones, and is mapped as it is now."""
    own_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    """`(vectors, text dim)`: what the map fitted without each of those images makes of it
    (`tune.fit_adapter`). They stand in for the map's output on those images, which would
    return their captions rather than what they show."""
    images: MappedImages = field(default_factory=MappedImages, compare=False, repr=False)
    """Every indexed image through this map, for `Reranker.propose`."""

    @classmethod
    def without_map(cls, region_weight: float, head: HeadScorer | None = None) -> TunedAdapter:
        """Tuning that turned on the head (or nothing) and no adapter."""
        empty = np.zeros(0, np.float32)
        return cls(empty, empty, empty, empty, weight=0.0, region_weight=region_weight, head=head)

    def embed(self, visual: np.ndarray, vector_ids: Sequence[int] | np.ndarray = ()) -> np.ndarray:
        """`visual` vectors `(n, dim)` mapped into the text space, unit rows; where
        `vector_ids` (their ids in the catalog) names a vector the map was fitted on, its
        left-out vector instead."""
        mapped = ((visual - self.mean) / self.scale) @ self.matrix + self.bias
        if len(vector_ids) and len(self.own_vector_ids):
            ids = np.asarray(vector_ids, np.int64)
            at = np.minimum(np.searchsorted(self.own_vector_ids, ids), len(self.own_vector_ids) - 1)
            own = self.own_vector_ids[at] == ids
            mapped[own] = self.own_vectors[at[own]]
        return l2_normalise(mapped)

    def map_images(
        self, catalog: Catalog, vector_ids: np.ndarray, items: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`ImageMap`: the images' `visual` vectors through this map (`embed`)."""
        found, visual = catalog.vectors_by_id(vector_ids, self.mean.shape[0])
        order = np.argsort(found)
        found, visual = found[order], visual[order]
        return np.searchsorted(vector_ids, found), self.embed(visual, found)

    @property
    def adapts(self) -> bool:
        return self.weight > 0 and self.matrix.size > 0

    def save(self, folder: Path, provenance: dict[str, object], head: Path | None = None) -> None:
        """Write the weights and where they came from into an index folder; `head` is the
        exported head file to move in beside them (an older one is removed when None). The
        `.npz` is written last: readers reload when it changes."""
        target = folder / HEAD_FILE
        if head is not None:
            head.replace(target)
        else:
            target.unlink(missing_ok=True)
        (folder / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
        np.savez(
            folder / WEIGHTS_FILE,
            mean=self.mean, scale=self.scale, matrix=self.matrix, bias=self.bias,
            own_vector_ids=self.own_vector_ids, own_vectors=self.own_vectors,
            weights=np.array([self.weight, self.region_weight], np.float64),
            **self.images.stored(),
        )

    @classmethod
    def load(cls, folder: Path) -> TunedAdapter | None:
        """What `tune` turned on for an index folder, if anything."""
        path = folder / WEIGHTS_FILE
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                weight, region_weight = (float(x) for x in data["weights"])
                adapter = cls(
                    data["mean"].astype(np.float32), data["scale"].astype(np.float32),
                    data["matrix"].astype(np.float32), data["bias"].astype(np.float32),
                    weight, region_weight,
                )
                if "own_vector_ids" in data:  # absent in weights tuned by earlier versions
                    adapter = replace(
                        adapter, own_vector_ids=data["own_vector_ids"].astype(np.int64),
                        own_vectors=data["own_vectors"].astype(np.float32),
                    )
                if "image_vector_ids" in data:
                    ids, vectors = data["image_vector_ids"].astype(np.int64), data["image_vectors"]
                    items = data["image_items"].astype(np.int64)
                    # Only a cache: one that does not fit is mapped again from the catalog.
                    if vectors.shape == (len(ids), adapter.bias.shape[0]) and len(items) == len(ids):
                        adapter = replace(adapter, images=MappedImages(ids, items, vectors.astype(np.float32)))
        except (OSError, KeyError, ValueError) as exc:
            raise IndexFormatError(
                f"The tuned reranker weights {path} cannot be read ({exc}); delete the file "
                "(search then uses the untuned reranker) or run `mmsearch tune` again."
            ) from exc
        own = adapter.own_vectors
        if (adapter.matrix.size and adapter.matrix.shape != (adapter.mean.shape[0], adapter.bias.shape[0])) or (
            len(adapter.own_vector_ids) and own.shape != (len(adapter.own_vector_ids), adapter.bias.shape[0])
        ):
            raise IndexFormatError(
                f"The tuned reranker weights {path} have mismatched shapes; delete the file or "
                "run `mmsearch tune` again."
            )
        head = folder / HEAD_FILE
        if head.is_file():
            adapter = replace(adapter, head=HeadScorer(head))
        return adapter
