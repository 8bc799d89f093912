"""Search plumbing for `Library`: a ready-made vector checked into a `Query`, the searcher with the
model's score scale, and the adapter `tune` stored, read again only when its file changes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmsearch.encoders.base import Encoder, ModelSpec
from mmsearch.encoders.registry import default_cutoffs, score_calibration
from mmsearch.errors import QueryError
from mmsearch.query.calibration import ScoreScale
from mmsearch.query.filters import Filters
from mmsearch.query.proposals import WEIGHTS_FILE, TunedAdapter
from mmsearch.query.rerank import Reranker
from mmsearch.query.search import Query, Searcher
from mmsearch.store.catalog import Catalog
from mmsearch.store.spaces import SpaceSet

if TYPE_CHECKING:
    from mmsearch.config import Settings


def vector_query(
    dims: dict[str, int],
    vector: Sequence[float] | np.ndarray,
    *,
    space: str,
    k: int,
    min_score: float | None,
    kinds: Sequence[str],
) -> Query:
    """A query for one space of an index whose spaces have `dims`, refusing a vector that cannot
    be searched there.

    Raises:
        QueryError: an unknown space, a vector of the wrong length, or one that is not finite.
    """
    if space not in dims:
        known = ", ".join(sorted(dims)) or "none yet (index something first)"
        raise QueryError(f"This index has no space {space!r}; its spaces are: {known}.")
    array = np.asarray(vector, dtype=np.float64).ravel()
    if array.shape[0] != dims[space] or not np.isfinite(array).all() or not array.any():
        raise QueryError(
            f"A query vector for {space!r} must be {dims[space]} finite numbers, not all zero "
            f"(got {array.shape[0]})."
        )
    return Query(
        vectors={space: array.astype(np.float32)},
        k=k,
        min_score=min_score,
        filters=Filters(tuple(kinds)),
    )


def make_searcher(
    catalog: Catalog,
    spaces: SpaceSet,
    encoder: Callable[[], Encoder],
    settings: Settings,
    spec: ModelSpec,
    reranker: Reranker | None = None,
) -> Searcher:
    """A searcher on an index, with the model's calibrated score scale and cut-offs (raw cosines
    and no default cut-off when `score_calibration` is off)."""
    if settings.score_calibration:
        scale, cutoffs = ScoreScale(score_calibration(spec)), default_cutoffs(spec)
    else:
        scale, cutoffs = ScoreScale(), {}
    return Searcher(catalog, spaces, encoder, settings, cutoffs, scale, reranker=reranker)


class TunedAdapterFile:
    """The adapter `tune` stored in an index folder, read again only when its file changed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cache: tuple[tuple[int, int] | None, TunedAdapter | None] | None = None

    def current(self) -> TunedAdapter | None:
        try:
            stat = (self.folder / WEIGHTS_FILE).stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        cached = self._cache
        if cached is None or cached[0] != stamp:
            cached = (stamp, TunedAdapter.load(self.folder) if stamp else None)
            self._cache = cached
        return cached[1]
