"""The commit side of an indexing run: each batch of encoded files written to the catalog in one
transaction with its vectors (the vector stores follow only after it), files that could not be
indexed recorded with their reason, and items whose files are gone deleted."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mmsearch.encoders.base import SEMANTIC, VIDEO_FRAME, Span
from mmsearch.encoders.regions import RegionCodes
from mmsearch.ingest_run import RunState
from mmsearch.media import Unreadable
from mmsearch.media.paths import is_within
from mmsearch.store.catalog import Catalog
from mmsearch.store.catalog_items import ItemFacts, ItemRow
from mmsearch.store.spaces import SpaceSet

UNKNOWN_KIND = "unknown"


@dataclass
class Encoded:
    """A batch of encoded files as it is committed: per file its facts and its vectors by
    space, and where given each vector's time span and source, an image's region codes and a
    video's region codes per keyframe."""

    facts: list[ItemFacts]
    vectors: list[dict[str, np.ndarray]]
    spans: list[dict[str, list[Span]]] | None = None
    sources: list[dict[str, list[str | None]]] | None = None
    regions: list[RegionCodes | None] | None = None
    frame_regions: list[list[RegionCodes | None] | None] | None = None

    def only(self, keep: list[int]) -> Encoded:
        """The files at the positions `keep`."""

        def pick(values: list[Any] | None) -> list[Any] | None:
            return None if values is None else [values[i] for i in keep]

        return Encoded(
            [self.facts[i] for i in keep], [self.vectors[i] for i in keep], pick(self.spans),
            pick(self.sources), pick(self.regions), pick(self.frame_regions),
        )


class Writer(Protocol):
    """Where the encode stage sends its batches: the catalog (`CatalogWriter`), or a Ray
    worker's records that the driver writes (`ingest_ray`)."""

    def commit(self, batch: Encoded, replaced: set[str]) -> None:
        """Write a batch of files with their vectors (`replaced`: the paths that had an item)."""

    def fail(self, facts: ItemFacts, reason: str) -> None:
        """Record a file that could not be indexed, with the reason."""


class CatalogWriter:
    """Writes one run's results to the index's catalog and vector stores."""

    def __init__(self, catalog: Catalog, spaces: SpaceSet, state: RunState) -> None:
        self.catalog = catalog
        self.spaces = spaces
        self._state = state
        self.report = state.report

    def commit(self, batch: Encoded, replaced: set[str]) -> None:
        t = time.perf_counter()
        old_ids: list[int] = []
        spans = batch.spans or [{} for _ in batch.facts]
        sources = batch.sources or [{} for _ in batch.facts]
        with self.catalog.write():
            rows = zip(batch.facts, batch.vectors, spans, sources)
            for n, (facts, vectors, times, made_by) in enumerate(rows):
                first = self._keyframes_held(facts)
                item_id, old, _ = self.catalog.write_item(facts, vectors, times, made_by)
                if batch.regions is not None:  # images: what each region shows, for the reranker
                    self.catalog.write_regions(item_id, batch.regions[n])
                frames = batch.frame_regions[n] if batch.frame_regions is not None else None
                if frames is not None:  # videos: per keyframe
                    self.catalog.write_frame_regions(item_id, frames, first)
                old_ids += old
                if facts.indexed_until is not None:
                    continue  # a film committed in part: counted once its last part is in
                if facts.path in replaced:
                    self.report.updated += 1
                else:
                    self.report.added += 1
                self.report.encoded += 1
        # Only after the commit: the in-memory indexes never hold what the catalog does not.
        # The new vectors come back from the catalog (ids above those already held).
        self.spaces.remove(old_ids)
        self.spaces.refresh()
        self._state.stage("write", t)

    def _keyframes_held(self, facts: ItemFacts) -> int:
        """How many keyframes the earlier parts of a film hold (0 unless `facts` is a later
        part): its keyframes' regions are numbered on from there."""
        if facts.part_start is None:
            return 0
        row = self.catalog.item_by_path(facts.path)
        return len(self.catalog.item_spans(row.id, SEMANTIC, VIDEO_FRAME)) if row else 0

    def fail(self, facts: ItemFacts, reason: str) -> None:
        """Record a file that could not be indexed, with the reason (its old vectors go)."""
        self.spaces.remove(self.catalog.write_error(facts, reason))
        self.report.failed += 1
        self.report.failures.append((facts.path, reason))

    def record_unreadable(self, unreadable: Iterable[Unreadable], roots: list[str]) -> None:
        """What the scan could not read, under the root (of `roots`) it was found in."""
        for entry in unreadable:
            root = next((r for r in roots if is_within(entry.path, r)), roots[0])
            self.fail(ItemFacts(entry.path, root, UNKNOWN_KIND, 0, 0, None), entry.reason)

    def remove_missing(self, missing: dict[str, ItemRow]) -> None:
        """Delete the items whose files are gone."""
        if not missing:
            return
        ids = [row.id for row in missing.values()]
        self.spaces.remove(self.catalog.delete_items(ids))
        self.report.removed += len(ids)
