"""Second stage: rerank the first stage's top-N images by what their regions show.

The first stage compares one query vector with one vector per image: "a man climbing a rock
wall" against a mixture of ImageNet class names for the whole picture. The reranker looks
closer (late interaction, as in ColBERT): each content word of the query ("man", "climbing",
"rock", "wall") is embedded on its own, matched to the regions of the image that fit it best
(the mean of its `TOP_REGIONS` best cosines, a soft max), and the words' matches are averaged.
No training is needed: regions and words already live in the model's text space
(`Encoder.region_vectors`): the offline model's label codes per cell of EfficientNet-Lite's
feature map, an OpenCLIP ViT's patch tokens through the model's projection. Sounds and
documents keep their first-stage order (their windows and chunks as regions measured no gain
and cost mixed collections their balance; see ARCHITECTURE.md).

When `mmsearch tune` found a gain on held-out captions of the user's own collection, it also
stored a linear adapter (`TunedAdapter`) mapping an image's `visual` features into the text
space; its cosine with the query is a third score, and its best matches among every indexed
image join the N (`Reranker.propose`): the first stage compares the query with one label-bridge
vector per image and misses many photos the adapter finds.

The first stage's image vector mixes only the classifier's top 10 labels (broader mixes lowered
images' calibrated scores against sounds' in mixed collections); the offline model also stores
each image's broader mix (that sharp mix plus 3x its top 50 labels at temperature 4,
`RegionCodes.image_topk`; see `offline.IMAGE_CODES_WIDE_SHARE`), and where an image has one,
its cosine with the query stands in for the first-stage score in the fusion below (`WIDER`).

Scores of the two or three stages are z-normalised over the N candidates and added with their
weights (cosines of different models are not comparable, ranks would throw away how sure each
is). Candidates without regions (documents, sounds, images indexed before regions existed)
score the candidates' mean on the region term, so they keep their first-stage place relative
to it. The fused value is mapped back onto the first stage's scale (same mean and spread over
the N), so scores stay comparable with those of the hits below the N.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import weakref
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mmsearch.encoders.base import VISUAL, Encoder, l2_normalise
from mmsearch.encoders.onnx_cache import atomic_path
from mmsearch.encoders.regions import RegionCodes
from mmsearch.errors import IndexFormatError
from mmsearch.media import IMAGE
from mmsearch.query.head import HEAD_FILE, TOP_REGIONS, HeadScorer
from mmsearch.store.catalog import Catalog

log = logging.getLogger(__name__)

RERANK = "rerank"
"""Key of the region score in `Hit.scores`."""
ADAPTED = "adapted"
"""Key of the tuned adapter's cosine in `Hit.scores`."""
WIDER = "wider"
"""Key of the query's cosine with the image's broader label mix (`RegionCodes.image_topk`) in
`Hit.scores`; where an image has one, it stands in for the first-stage score in the fusion."""
REGION_WEIGHT = 1.0
"""Weight of the region score against the first stage's (both z-normalised over the N).
Measured on flickr8k_1k and coco_mini (scripts/eval_retrieval.py): 0.5 and 2 were worse."""
ADAPTER_WORD_SHARE = 0.5
"""Weight of the query's words, each matched to the adapted image, next to the whole query in
the adapter's score (see `Reranker.adapter_scores`); chosen on flickr8k_1k folds."""
ADAPTER_PROPOSALS = 25
"""Images a tuned adapter adds to the reranker's N: its best matches for the query among every
indexed image, where the first stage missed them (`Reranker.propose`). The first stage's top 50
held the right photo for 62 % of flickr8k_1k's captions; with the adapter's top 25 (fitted on
the other folds' captions) 83 %, with its top 50 89 % (numpy on the eval index)."""
WEIGHTS_FILE = "rerank.npz"
PROVENANCE_FILE = "rerank.json"
POOLED_FILE = "pooled-regions.npz"
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
STOP_WORDS = frozenset((
    "a", "an", "the", "of", "in", "on", "at", "to", "and", "or", "is", "are", "was", "were", "be",
    "been", "being", "with", "without", "his", "her", "their", "its", "it", "this", "that",
    "these", "those", "there", "here", "for", "from", "by", "into", "onto", "up", "down", "while",
    "as", "one", "two", "three", "some", "other", "each", "near", "next", "front", "top", "out",
    "over", "under", "through", "across", "who", "which", "what", "where", "when", "has", "have",
    "had", "he", "she", "they", "them", "him", "we", "you", "i", "my", "your", "our", "very",
    "just",
))
"""Words that name nothing one could see: they would match every image a little."""


WORD_CACHE = 4096
"""Word vectors kept per model: a session's queries share many words, and each embedding costs
a run of the text model (~5 ms on a quiet core for a query's words, several times that when
the machine is busy)."""
_word_vectors: weakref.WeakKeyDictionary[Encoder, OrderedDict[str, np.ndarray]] = (
    weakref.WeakKeyDictionary()
)
_blas: dict[str, Any] = {}
_blas_lock = threading.Lock()


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """BLAS limited to one thread while a query's small products run: OpenBLAS's thread pool
    turned a (6 x 384) @ (384 x 1000) product from 0.6 ms into 24-31 ms on these 2-core
    machines whenever another process held a core (measured). A controller made once costs
    ~0.7 ms per use; without threadpoolctl nothing is limited."""
    with _blas_lock:
        if "controller" not in _blas:
            try:
                from threadpoolctl import ThreadpoolController

                _blas["controller"] = ThreadpoolController()
            except ImportError:
                _blas["controller"] = None
    controller = _blas["controller"]
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def word_vectors(encoder: Encoder, words: Sequence[str]) -> np.ndarray:
    """Unit text vectors of single words, `(len(words), dim)`, from a small per-model cache."""
    with _blas_lock:
        cache = _word_vectors.setdefault(encoder, OrderedDict())
        missing = [w for w in words if w not in cache]
    if missing:
        fresh = encoder.embed_texts(missing)
        with _blas_lock:
            for word, vector in zip(missing, fresh):
                cache[word] = vector
            while len(cache) > WORD_CACHE:
                cache.popitem(last=False)
    with _blas_lock:
        rows = []
        for word in words:
            vector = cache.get(word)
            if vector is None:  # evicted meanwhile by another thread's words
                vector = encoder.embed_texts([word])[0]
            else:
                cache.move_to_end(word)
            rows.append(vector)
    return np.stack(rows)


def image_word_vectors(encoder: Encoder, words: Sequence[str]) -> np.ndarray:
    """`word_vectors` of query words written in the model's image template, as they are
    matched with image regions (the offline bridge's "a photo of a dog.")."""
    template = encoder.word_template(IMAGE)
    return word_vectors(encoder, [template.format(name=w) for w in words])


def content_words(text: str, limit: int = 16) -> list[str]:
    """The query's words worth matching to regions, lower-cased, in order, each once."""
    seen: list[str] = []
    for word in _WORD.findall(text.lower()):
        if word not in STOP_WORDS and len(word) > 1 and word not in seen:
            seen.append(word)
    return seen[:limit]


def zscore(values: np.ndarray) -> np.ndarray:
    """Values centred and scaled to unit spread; all-equal values give zeros."""
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 1e-9 else np.zeros_like(values)


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


Candidate = tuple[int, float, dict[str, float]]
"""(item id, score, per-space scores), as `Searcher._fuse` returns them."""


class Reranker:
    """Reorders the first `top_n` fused candidates of a text query (see the module doc)."""

    def __init__(
        self,
        catalog: Catalog,
        encoder: Callable[[], Encoder],
        *,
        top_n: int = 50,
        adapter: TunedAdapter | None = None,
        region_weight: float = REGION_WEIGHT,
        pooled: PooledRegions | None = None,
    ) -> None:
        self.catalog = catalog
        self._encoder = encoder
        self.top_n = top_n
        self.adapter = adapter
        self.region_weight = adapter.region_weight if adapter is not None else region_weight
        self.pooled = pooled

    @property
    def proposes(self) -> bool:
        """Pooled regions or a tuned adapter can add images the first stage missed (`propose`)."""
        return self._pools or (self.adapter is not None and self.adapter.adapts)

    @property
    def _pools(self) -> bool:
        return self.pooled is not None and self.pooled.available

    def propose(
        self, text: str, query_vector: np.ndarray, allowed: np.ndarray | None,
        exclude: Collection[int],
    ) -> list[int]:
        """Images beyond the first stage's N for a text query, to join the N that `rerank`
        judges: the `POOLED_PROPOSALS` best by pooled regions (`PooledRegions`), then the
        `ADAPTER_PROPOSALS` best by the tuned adapter, which learnt this collection's look from
        its captions; among the `visual` vector ids `allowed` (None: all), `exclude` left out.
        A text query's first stage compares it with one label-bridge vector per image and
        misses photos either would find."""
        found: list[int] = []
        if self.pooled is not None and self._pools:
            found += self.pooled.best(self.catalog, text, query_vector, POOLED_PROPOSALS, allowed, exclude)
        if self.adapter is not None and self.adapter.adapts:
            found += self.adapter.images.best(
                self.adapter, self.catalog, query_vector, ADAPTER_PROPOSALS, allowed,
                {*exclude, *found},
            )
        return found

    def rerank(
        self, text: str, query_vector: np.ndarray | None, candidates: list[Candidate],
        keyword_matches: Collection[int] = (), proposed: Sequence[Candidate] = (),
    ) -> list[Candidate]:
        """`candidates` with the first `top_n` reordered and rescored; the rest unchanged.

        Args:
            text: the query's positive words.
            query_vector: the query's `semantic` vector (for the tuned adapter), if any.
            candidates: the first stage's list, best first.
            proposed: more candidates, with their first-stage scores, judged with the first
                `top_n` (those `propose` found); taken out of the rest if they are in it.
            keyword_matches: items whose name or text holds the query's words. They keep
                the places the first stage gave them among the N; the reranker reorders them
                among themselves and the other items among themselves (a literal match is
                evidence regions cannot see: on tuxpaint, whose file names spell their
                captions, image mAP 0.493 with keyword evidence alone fell to 0.468 when the
                regions could bury matches, and to 0.476 when they could only not count
                against them).
        """
        head, tail = candidates[: self.top_n], candidates[self.top_n :]
        extra: list[Candidate] = []
        if proposed:
            joined = {item for item, _, _ in head}
            extra = [c for c in proposed if c[0] not in joined]
            moved = {item for item, _, _ in extra}
            tail = [c for c in tail if c[0] not in moved]
        if len(head) + len(extra) < 2:
            return head + extra + tail
        items = [item for item, _, _ in head + extra]
        known = self.item_scores(text, query_vector, items)
        parts = self.scores(text, query_vector, items, known)
        reranked = self._fused(head + extra, parts, keyword_matches)
        if reranked is None:
            return head + extra + tail
        judged = {item for _, raw in parts.values() for item in raw}
        unjudged = {item for item, _, _ in head if item not in judged}
        if extra and unjudged:
            # Sounds and documents keep the places the N alone gives them: the proposals
            # compete for the images' places (and their own, after the N) and move no photo
            # past a sound (they had lifted photos to the top of 64 % of "the sound of a ..."
            # queries in a mixed index, against 34 %).
            alone_parts = self.scores(text, query_vector, items[: len(head)], known)
            alone = self._fused(head, alone_parts, keyword_matches) or head
            slots = [item for item, _, _ in alone] + [item for item, _, _ in extra]
            reranked = keep_places(slots, reranked, unjudged)
        return reranked + tail

    def _fused(
        self, head: list[Candidate], parts: dict[str, tuple[np.ndarray, dict[int, float]]],
        keyword_matches: Collection[int],
    ) -> list[Candidate] | None:
        """`fuse` with this reranker's weights; keyword matches keep their places."""
        weights = {RERANK: self.region_weight}
        if self.adapter is not None and self.adapter.adapts:
            weights[ADAPTED] = self.adapter.weight
        reranked = fuse(head, parts, weights)
        if reranked is not None and keyword_matches:
            reranked = keep_places([item for item, _, _ in head], reranked, keyword_matches)
        return reranked

    def scores(
        self, text: str, query_vector: np.ndarray | None, items: Sequence[int],
        known: dict[str, dict[int, float]] | None = None,
    ) -> dict[str, tuple[np.ndarray, dict[int, float]]]:
        """The second-stage scores of candidate `items`: name (`RERANK`, `ADAPTED`) -> (z-score
        per candidate, raw score per item that has one). Names that cannot be computed (no
        content words, no regions, no adapter) are left out. `known`: raw scores
        (`item_scores`) already computed for these items or more, z-scored over `items`."""
        parts: dict[str, tuple[np.ndarray, dict[int, float]]] = {}
        with one_blas_thread():
            if known is None:
                known = self.item_scores(text, query_vector, items)
            for name, values in known.items():
                raw = {item: values[item] for item in items if item in values}
                if len(raw) >= 2:
                    parts[name] = self.zscored(items, raw), raw
            if self.adapter is not None and self.adapter.adapts and query_vector is not None:
                adapted = self.adapter_scores(text, query_vector, items)
                if adapted is not None:
                    parts[ADAPTED] = adapted
        return parts

    def item_scores(
        self, text: str, query_vector: np.ndarray | None, items: Sequence[int]
    ) -> dict[str, dict[int, float]]:
        """The raw `WIDER` and `RERANK` scores of those `items` that have them: each item's
        own, whatever the other candidates (`scores` z-scores them over the candidates; `tune`
        reuses them as its candidates change)."""
        out: dict[str, dict[int, float]] = {}
        stored = self.catalog.item_regions(items) if self.region_weight > 0 or query_vector is not None else {}
        if query_vector is not None:
            out[WIDER] = self._wider_scores(query_vector, stored)
        if self.region_weight > 0:
            out[RERANK] = self._region_scores(text, stored)
        return out

    def _wider_scores(self, query_vector: np.ndarray, stored: dict[int, RegionCodes]) -> dict[int, float]:
        """The cosine of the query with each image's broader label mix: images indexed before
        the mix was stored have none."""
        mixes = {item: codes.image_topk() for item, codes in stored.items()}
        mixes = {item: mix for item, mix in mixes.items() if mix is not None}
        if not mixes:
            return {}
        ids = list(mixes)
        # One "region" per image: the stored weights make its mix a unit vector, as regions'.
        as_regions = [RegionCodes.from_label_topk(mixes[i][0][None], mixes[i][1][None]) for i in ids]
        sims = self._encoder().region_similarities(as_regions, np.asarray(query_vector)[None])
        return {item: float(s[0, 0]) for item, s in zip(ids, sims) if s is not None}

    def _region_scores(self, text: str, stored: dict[int, RegionCodes]) -> dict[int, float]:
        """The region score of each item that has regions."""
        words = content_words(text)
        if not words or not stored:
            return {}
        encoder = self._encoder()
        # Words in the model's image template (the offline model's label bridge: "a photo of a
        # dog.", as the labels were embedded; R@1 .120 against .114 for bare words on
        # flickr8k_1k, 500 captions).
        vectors = image_word_vectors(encoder, words)
        ids = list(stored)
        head = self.adapter.head if self.adapter is not None else None
        if head is not None:  # trained: the exported head (query/head.py)
            scored = head.scores(vectors, [stored[i] for i in ids])
            return {item: value for item, value in zip(ids, scored) if value is not None}
        return self.late_interaction(encoder, vectors, [stored[i] for i in ids], ids)

    @staticmethod
    def late_interaction(
        encoder: Encoder, vectors: np.ndarray, codes: Sequence[RegionCodes], ids: Sequence[int]
    ) -> dict[int, float]:
        """The zero-shot score per item: each word's mean of its `TOP_REGIONS` best region
        cosines, averaged over the words (what the untrained head computes)."""
        raw: dict[int, float] = {}
        for item, sims in zip(ids, encoder.region_similarities(codes, vectors)):
            if sims is None or sims.shape[1] == 0:
                continue
            k = min(TOP_REGIONS, sims.shape[1])
            best = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
            raw[item] = float(best.mean())
        return raw

    def adapter_scores(
        self, text: str, query_vector: np.ndarray, items: Sequence[int]
    ) -> tuple[np.ndarray, dict[int, float]] | None:
        """(z-scored adapter score per candidate, the adapted image's cosine with the query
        per item): the `ADAPTED` part of `scores`, alone (`tune` judges adapters with it). The score adds to the whole query's z-scored cosine `ADAPTER_WORD_SHARE`
        times the z-scored mean cosine of the query's content words (in the bridge's template,
        as for regions) with the adapted image: on flickr8k_1k (5 folds over images, ridge
        adapter at strength 5) held-out R@1 .137 -> .151 and R@10 .479 -> .507."""
        assert self.adapter is not None
        found = self.adapter.images.vectors(self.adapter, self.catalog, items)
        if len(found) < 2:
            return None
        ids = list(found)
        mapped = np.stack([found[i] for i in ids])
        whole = mapped @ query_vector
        combined = zscore(whole)
        words = content_words(text)
        if words and ADAPTER_WORD_SHARE > 0:
            encoder = self._encoder()
            vectors = image_word_vectors(encoder, words)
            combined = combined + ADAPTER_WORD_SHARE * zscore((vectors @ mapped.T).mean(axis=0))
        z = self.zscored(items, dict(zip(ids, combined.tolist())))
        return z, {item: float(score) for item, score in zip(ids, whole)}

    @staticmethod
    def zscored(items: Sequence[int], raw: dict[int, float]) -> np.ndarray:
        """Per candidate, its z-scored value among those that have one; 0 (the mean) for those
        that have none."""
        values = np.array(list(raw.values()), np.float64)
        mean, spread = values.mean(), values.std()
        if spread <= 1e-9:
            return np.zeros(len(items))
        return np.array([(raw[i] - mean) / spread if i in raw else 0.0 for i in items])


def keep_places(
    first_order: Sequence[int], reranked: list[Candidate], kept: Collection[int]
) -> list[Candidate]:
    """`reranked` rearranged so the `kept` items fill the places they held in `first_order`
    (each group in its reranked order); scores are capped by the one above to stay monotone."""
    matched = iter([c for c in reranked if c[0] in kept])
    others = iter([c for c in reranked if c[0] not in kept])
    out: list[Candidate] = []
    for item in first_order:
        item_id, score, per_space = next(matched) if item in kept else next(others)
        if out:
            score = min(score, out[-1][1])
        out.append((item_id, score, per_space))
    return out


def fuse(
    head: Sequence[Candidate],
    parts: dict[str, tuple[np.ndarray, dict[int, float]]],
    weights: dict[str, float],
) -> list[Candidate] | None:
    """`head` reordered by its z-scored first-stage score plus the weighted z-scores of `parts`
    (see `Reranker.scores`), rescored onto the first stage's scale (same mean and spread over
    the candidates); None when no part has any weight. A `WIDER` part replaces the first-stage
    z-scores of the items it has (keeping their mean and spread as a group), whatever the
    weights."""
    used = {name: part for name, part in parts.items() if name != WIDER and weights.get(name, 0.0) > 0}
    if not used and WIDER not in parts:
        return None
    first = np.array([score for _, score, _ in head], np.float64)
    fused = zscore(first)
    total_weight = 1.0
    extra: dict[int, dict[str, float]] = {}
    if WIDER in parts:  # the broader label mix stands in for the first stage where an image has one
        z, raw = parts[WIDER]
        has = np.array([item in raw for item, _, _ in head])
        # On the first stage's footing of those items as a group: it reorders them among
        # themselves and leaves their standing against other kinds (a sound for "the sound of
        # a dog") as the first stage gave it. Replacing it outright lifted photos above sounds:
        # esc50 in a mixed index fell from 0.90 to 0.76 of the sounds-only P@8.
        group = fused[has]
        fused = fused.copy()
        fused[has] = group.mean() + group.std() * zscore(z[has])
        for item, value in raw.items():
            extra.setdefault(item, {})[WIDER] = value
    for name, (z, raw) in used.items():
        fused = fused + weights[name] * z
        total_weight += weights[name]
        for item, value in raw.items():
            extra.setdefault(item, {})[name] = value
    rescored = first.mean() + first.std() * fused / total_weight
    order = np.argsort(-rescored, kind="stable")
    return [
        (head[i][0], float(rescored[i]), {**head[i][2], **extra.get(head[i][0], {})})
        for i in order
    ]
