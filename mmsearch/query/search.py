"""Run a query: embed its parts into their spaces (`embedding.py`), search each, cut off, fuse
(the arithmetic in `fusion.py`), rerank, build hits.

Inside one space the parts are combined as weighted vector arithmetic (negatives subtract).
Every cosine is mapped onto the model's calibrated 0-1 scale (`mmsearch.query.calibration`)
before it is cut off, so `min_score` means the same in every space. Across spaces (text ->
`semantic`, example images -> `visual`) an item's fused score is the weighted mean of its
calibrated scores in each space (computed exactly for items one list did not reach): still a
0-1 score the cut-off applies to. Without calibration (a model with no fitted map, or
`score_calibration = false`) cosines of different spaces are not comparable, and the lists
are fused by weighted reciprocal-rank fusion instead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.encoders.base import ACOUSTIC, SEMANTIC, VIDEO_FRAME, VIDEO_SOUND, VISUAL, Encoder
from mmsearch.errors import QueryError
from mmsearch.media import AUDIO, IMAGE, TEXT, VIDEO
from mmsearch.query.calibration import ScoreScale, from_log_odds, log_odds
from mmsearch.query.embedding import QueryEmbedder
from mmsearch.query.filters import Filters
from mmsearch.query.fusion import (
    KEYWORD,
    fuse_means,
    fuse_ranks,
    lift_keyword_matches,
    scores_by_item,
)
from mmsearch.query.keyframes import SOUNDTRACK_COVERAGE, Keyframes
from mmsearch.query.keywords import fts_expression, substring_expression, unspaced_expression
from mmsearch.query.parse import ParsedQuery, Term, parse_query
from mmsearch.query.rerank import Reranker
from mmsearch.query.words import uncached_words
from mmsearch.results import MAX_MOMENTS, Hit
from mmsearch.store.catalog import Catalog
from mmsearch.store.spaces import SpaceSet

if TYPE_CHECKING:
    from mmsearch.config import Settings

log = logging.getLogger(__name__)

MAX_K = 10_000
"""The most hits one search returns (beyond it, page through narrower queries)."""
KINDS = (IMAGE, TEXT, AUDIO, VIDEO)


@dataclass(frozen=True)
class Query:
    """A search request. At least one of terms, example images and example sounds is needed.

    `text` is a query string in the query language; `terms`, and the filters, examples and
    `min:` it holds, are read from it when the `Query` is made.
    """

    text: str | None = None
    images: Sequence[str] = ()
    k: int = 10
    min_score: float | None = None
    """Score below which matches are dropped (0-1 on a calibrated model's scale, else a
    cosine); None uses the model's default cut-off."""
    filters: Filters = field(default_factory=Filters)
    image_weight: float = 1.0
    """Weight of the example images against the text when both are given."""
    audios: Sequence[str] = ()
    """Example recordings: "more like this sound"."""
    audio_weight: float = 1.0
    terms: Sequence[Term] = field(default=(), init=False)
    """Weighted and negative text terms, read from `text`.

    `text` is read whole (see `mmsearch.query.parse`): its filters must hold beside `filters`
    (lists intersect, bounds narrow), its `image:`/`audio:` examples join `images`/`audios`,
    and its `min:` wins over `min_score`."""
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    """Ready-made query vectors by space (`Library.search_vector`): searched as given."""

    def __post_init__(self) -> None:
        """Read the text; values from programs get the same checks as the command line's."""
        if self.text is not None:
            try:
                self.text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise QueryError(
                    f"The query text has a character that is not valid text at position "
                    f"{exc.start} (bytes that are not UTF-8?); type it again in UTF-8."
                ) from None
        unknown = [k for k in (*self.filters.kinds, *self.filters.not_kinds) if k not in KINDS]
        if unknown:
            raise QueryError(f"Unknown kind {unknown[0]!r}: kinds are {', '.join(KINDS)}.")
        parsed = parse_query(self.text) if self.text and self.text.strip() else ParsedQuery()
        set_field = object.__setattr__  # frozen: fields are settled here, once
        set_field(self, "terms", parsed.terms)
        set_field(self, "images", (*parsed.images, *self.images))
        set_field(self, "audios", (*parsed.audios, *self.audios))
        set_field(self, "filters", parsed.filters.merged(self.filters))
        if parsed.min_score is not None:
            set_field(self, "min_score", parsed.min_score)
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= MAX_K:
            raise QueryError(f"k={self.k!r} is out of range: give a whole number from 1 to {MAX_K}.")
        if self.min_score is not None and not (
            isinstance(self.min_score, (int, float)) and -1.0 <= self.min_score <= 1.0
        ):
            raise QueryError(
                f"min_score={self.min_score!r} is out of range: give a number from 0 to 1 "
                "(-1 to 1 for a model whose scores are raw cosines), or leave it out for the "
                "model's cut-off."
            )
        for name in ("image_weight", "audio_weight"):
            weight = getattr(self, name)
            if not (math.isfinite(weight) and 0 < weight <= 100):
                raise QueryError(f"{name}={weight!r} must be above 0 and at most 100.")


class Hits(list[Hit]):
    """The hits of one search, best first, and what the relevance cut-off hid.

    Attributes:
        below_cutoff: items that matched but scored under the cut-off (among the candidates
            looked at: a lower bound), so "no hits" can say what to do.
        best_below: the best of their scores (None when none).
        cutoff: the lowest cut-off applied (the query's `min_score` or the model's default).
        calibrated: whether scores are on the model's calibrated 0-1 scale (False: raw cosines,
            and several spaces fused by rank).
    """

    below_cutoff: int = 0
    best_below: float | None = None
    cutoff: float | None = None
    calibrated: bool = False


class Searcher:
    """Answers queries against one index."""

    def __init__(
        self,
        catalog: Catalog,
        spaces: SpaceSet,
        encoder: Callable[[], Encoder],
        settings: Settings,
        default_cutoffs: dict[str, float],
        scale: ScoreScale | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.reranker = reranker
        self.catalog = catalog
        self.spaces = spaces
        self.settings = settings
        self.default_cutoffs = default_cutoffs
        self.scale = scale or ScoreScale()
        self.embedder = QueryEmbedder(catalog, spaces, encoder, settings, self._words_with_query)
        self._best_vector: dict[tuple[str, int], int] = {}  # (space, item) -> its best vector id
        # (space, video item) -> the source of its best vector: a keyframe, its soundtrack, speech
        self._video_source: dict[tuple[str, int], str | None] = {}
        self._below: dict[int, float] = {}  # items seen only under the cut-off -> best score

    def search(self, query: Query) -> Hits:
        if query.k < 1:
            raise QueryError(f"k must be at least 1, not {query.k}.")
        terms = list(query.terms)
        wanted = self.embedder.vectors(
            terms, query.images, query.audios, query.vectors, query.image_weight, query.audio_weight
        )
        ranked: dict[str, list[tuple[int, float]]] = {}
        keyword_cosines: dict[int, float] = {}
        for space, (vector, weight) in wanted.items():
            ranked[space] = self._search_space(space, vector, query)
        weights = {s: w for s, (_, w) in wanted.items()}
        expression = fts_expression(terms) if SEMANTIC in wanted else None
        if expression is not None:
            matched = self.catalog.keyword_search(
                expression,
                query.k * 4 + 16,
                query.filters.sql(),
                inside_read_text=substring_expression(terms),
                unspaced=unspaced_expression(terms),
            )
            if self.settings.keyword_fusion == "rrf":
                ranked[KEYWORD] = [(item, 1.0) for item in matched]
                weights[KEYWORD] = 1.0
            else:
                ranked[SEMANTIC], keyword_cosines = self._lift_keyword_matches(
                    ranked[SEMANTIC], wanted[SEMANTIC][0], matched, query
                )
        if self.scale.calibrated and KEYWORD not in ranked:
            fused = self._fuse_scores(ranked, weights, wanted, query)
        else:
            fused = fuse_ranks(ranked, weights)
        if self.reranker is not None and SEMANTIC in wanted:  # second stage (query/rerank.py)
            matches = set(keyword_cosines) | {item for item, _ in ranked.get(KEYWORD, ())}
            words = " ".join(t.text for t in terms if not t.negative)
            proposed = self._proposed(words, wanted, fused, query)
            fused = self._reranked(
                words, wanted[SEMANTIC][0], fused, matches, proposed, list(wanted) == [SEMANTIC]
            )
        passed = {item for item, _, _ in fused}  # above the cut-off
        # A few spare candidates: items deleted since the vector index was saved drop out here.
        fused = fused[: query.k * 2 + 8]
        rows = self.catalog.items_by_id([item for item, _, _ in fused])
        spans = self._spans([item for item, _, _ in fused], list(wanted))
        moments = self._moments(spans, rows, wanted, query)
        hits = Hits()
        for item, score, per_space in fused:
            row = rows.get(item)
            if row is None or row["status"] != "ok":
                continue
            if len(hits) == query.k:
                break
            if item in keyword_cosines:
                per_space = {**per_space, SEMANTIC: keyword_cosines[item], KEYWORD: 1.0}
            hits.append(
                Hit(
                    path=row["path"],
                    score=round(float(score), 6),
                    kind=row["kind"],
                    scores={s: round(v, 6) for s, v in per_space.items()},
                    size=row["size"],
                    width=row["width"],
                    height=row["height"],
                    taken_at=row["taken_at"],
                    duration=row.get("duration"),
                    start=spans[item][0] if item in spans else None,
                    end=spans[item][1] if item in spans else None,
                    moments=moments.get(item, ()),
                    id=item,
                )
            )
        below = [score for item, score in self._below.items() if item not in passed]
        hits.below_cutoff = len(below)
        hits.best_below = round(max(below), 6) if below else None
        hits.cutoff = min((self._cutoff(space, query) for space in wanted), default=None)
        hits.calibrated = self.scale.calibrated
        return hits

    def _words_with_query(self, encoder: Encoder, terms: Sequence[Term]) -> list[str]:
        """The reranker's word texts not embedded yet, where the model embeds them with the
        query for less than on their own (`Encoder.joint_text_batches`): for OpenCLIP's numpy
        tower, whose every run reads all its weights, a cold text search's two runs (query,
        then words) cost ~20 ms more than one (ARCHITECTURE.md, "The CLI's cold path")."""
        if self.reranker is None or not encoder.joint_text_batches:
            return []
        if encoder.text_spaces().get(SEMANTIC) != encoder.embed_texts:
            return []  # the words are embedded by `embed_texts`: the same tower only
        words = self.reranker.word_texts(" ".join(t.text for t in terms if not t.negative))
        return uncached_words(encoder, words)

    def _reranked(
        self,
        words: str,
        vector: np.ndarray,
        fused: list[tuple[int, float, dict[str, float]]],
        keyword_matches: set[int],
        proposed: list[tuple[int, float, dict[str, float]]],
        by_keyframe: bool = False,
    ) -> list[tuple[int, float, dict[str, float]]]:
        """The reranker's order and scores. It adds z-scores and maps the sum back onto the
        first stage's mean and spread; calibrated scores go to it as log-odds, where adding
        evidence is what it means (probabilities bunch up near 1 and lose the first stage's
        keyword evidence in a z-score), and come back as 0-1 scores. With `by_keyframe` (a
        text query), a video's best keyframes are its candidates (`query/keyframes.py`), and
        the best of them gives the video its place and its moment."""
        assert self.reranker is not None
        # A video the words found by what is said or written in it is not judged by its
        # keyframes (a lecture's slides need not show what is said) and keeps its place. One
        # found by its soundtrack keeps its place only where the soundtrack covers the words
        # ("the sound of a dog barking", not "a dog asleep on a sofa": a barking film need not
        # show a sofa); otherwise its keyframes judge it, as photos (`SOUNDTRACK_COVERAGE`).
        source = {item: self._video_source.get((SEMANTIC, item), VIDEO_FRAME) for item, _, _ in fused}
        # videos only: a photo or a sound in it would void the keyword matches' places
        heard = {item for item, made in source.items() if made not in (VIDEO_FRAME, VIDEO_SOUND)}
        sounding = [item for item, made in source.items() if made == VIDEO_SOUND]
        if sounding:
            coverage = self.reranker.soundtrack_scores(words, sounding)
            # No content words to weigh: the first stage's word stands.
            heard |= {item for item in sounding if coverage.get(item, 1.0) >= SOUNDTRACK_COVERAGE}
        head: list[Any] = fused[: self.reranker.top_n]
        frames = None
        if by_keyframe:
            videos = [
                item for item, _, _ in head
                if (SEMANTIC, item) in self._video_source and item not in keyword_matches
            ]
            if videos:
                frames = Keyframes(self.catalog, self.scale, vector, videos, VIDEO)
                head = frames.expand(head, heard)
        to, back = (log_odds, from_log_odds) if self.scale.calibrated else (float, float)
        reranked = self.reranker.rerank(
            words, vector,
            [(key, to(score), per) for key, score, per in head + fused[self.reranker.top_n :]],
            keyword_matches, [(item, to(score), per) for item, score, per in proposed],
            heard, head_size=len(head),
        )
        out = [(key, back(value), per) for key, value, per in reranked]
        if frames is None:
            return out
        out, moments = frames.regroup(out)
        for item, vector_id in moments.items():
            self._best_vector[(SEMANTIC, item)] = vector_id
        return out

    def _proposed(
        self,
        words: str,
        wanted: dict[str, tuple[np.ndarray, float]],
        fused: list[tuple[int, float, dict[str, float]]],
        query: Query,
    ) -> list[tuple[int, float, dict[str, float]]]:
        """Images the reranker proposes for a text query beyond the first stage's N (pooled
        regions, a tuned adapter: `Reranker.propose`), under the query's filters, with their
        first-stage scores; those under the cut-off stay out, as the first stage's own do."""
        assert self.reranker is not None
        if list(wanted) != [SEMANTIC] or not self.reranker.proposes:
            return []  # examples' spaces would need their scores too: text queries only
        allowed = self._allowed_vectors(VISUAL, query)
        if allowed is not None and len(allowed) == 0:
            return []
        vector = wanted[SEMANTIC][0]
        head = {item for item, _, _ in fused[: self.reranker.top_n]}
        items = self.reranker.propose(words, vector, allowed, head)
        scores = self._item_scores(items, SEMANTIC, vector)
        cutoff = self._cutoff(SEMANTIC, query)
        ranked = sorted(((item, s) for item, s in scores.items() if s >= cutoff), key=lambda kv: -kv[1])
        return [(item, score, {SEMANTIC: score}) for item, score in ranked]

    def _moments(
        self, spans: dict[int, tuple[float, float]], rows: dict[int, Any],
        wanted: dict[str, tuple[np.ndarray, float]], query: Query,
    ) -> dict[int, tuple[tuple[float, float, float], ...]]:
        """For each recording or video with a best moment (`spans`), its other windows that
        pass the cut-off in the space that placed the best one, best first, none overlapping
        a better one: where else in the film the dog appears, or the phrase is said again."""
        by_space: dict[str, list[int]] = {}
        for item in spans:
            for space in self._moment_order(list(wanted)):
                if (space, item) in self._best_vector:
                    by_space.setdefault(space, []).append(item)
                    break
        out: dict[int, tuple[tuple[float, float, float], ...]] = {}
        for space, items in by_space.items():
            vector, cutoff = wanted[space][0], self._cutoff(space, query)
            for item, windows in self.catalog.item_timed_vectors(items, space).items():
                kind = rows[item]["kind"] if item in rows else None
                scored = sorted(
                    (
                        (self.scale.score(space, kind, source, float(row @ vector)), t0, t1)
                        for row, source, t0, t1 in windows
                    ),
                    reverse=True,
                )
                taken = [spans[item]]
                found: list[tuple[float, float, float]] = []
                for score, t0, t1 in scored:
                    if score < cutoff or len(found) == MAX_MOMENTS:
                        break
                    if all(t1 <= a or t0 >= b for a, b in taken):
                        taken.append((t0, t1))
                        found.append((round(t0, 3), round(t1, 3), round(score, 6)))
                if found:
                    out[item] = tuple(found)
        return out

    @staticmethod
    def _moment_order(spaces: list[str]) -> list[str]:
        """The spaces a hit's moment is taken from, in order: example sounds first."""
        return sorted(spaces, key=lambda s: s != ACOUSTIC)

    def _spans(self, items: list[int], spaces: list[str]) -> dict[int, tuple[float, float]]:
        """Where in each recording it matched: the time range of its best vector, taken from
        the first queried space (example sounds first) that has one."""
        order = self._moment_order(spaces)
        chosen: dict[int, int] = {}
        for item in items:
            for space in order:
                vid = self._best_vector.get((space, item))
                if vid is not None:
                    chosen[item] = vid
                    break
        times = self.catalog.vector_spans(list(chosen.values()))
        return {item: times[vid] for item, vid in chosen.items() if vid in times}

    # -- searching ----------------------------------------------------------------------------

    def _search_space(self, space: str, vector: np.ndarray, query: Query) -> list[tuple[int, float]]:
        """(item id, best cosine) pairs of one space, best first, above the cut-off."""
        allowed = self._allowed_vectors(space, query)
        if allowed is not None and len(allowed) == 0:
            return []
        cutoff = self._cutoff(space, query)
        # Documents have several chunk vectors: fetch more than k so k distinct items remain.
        fetch = query.k * 4 + 16
        if self.reranker is not None:  # the reranker sees its top-N even when k is small
            fetch = max(fetch, self.reranker.top_n)
        with self.spaces.reading() as stores:  # held still while a writer thread commits
            store = stores.get(space)
            if store is None or len(store) == 0:
                return []
            scores, ids = store.search(vector[None, :], fetch, allowed)
        # Cosines of unit vectors lie in [-1, 1]; anything else (rounding aside) is damage.
        pairs = [
            (int(i), min(1.0, max(-1.0, float(s))))
            for i, s in zip(ids[0], scores[0])
            if i >= 0 and math.isfinite(s)
        ]
        owners = self.catalog.vector_owners([vid for vid, _ in pairs])
        best: dict[int, float] = {}
        for vid, cosine in pairs:
            if vid not in owners:  # deleted since the vector index was saved
                continue
            item, kind, source = owners[vid]
            score = self.scale.score(space, kind, source, cosine)
            if score < cutoff:
                self._below[item] = max(score, self._below.get(item, -2.0))
            elif score > best.get(item, -2.0):
                best[item] = score
                self._best_vector[(space, item)] = vid
                if kind == VIDEO:
                    self._video_source[(space, item)] = source
        return sorted(best.items(), key=lambda kv: -kv[1])

    def _allowed_vectors(self, space: str, query: Query) -> np.ndarray | None:
        """The ids of the vectors of `space` the query's filters let through; None: all."""
        where = query.filters.sql()
        return None if where is None else self.catalog.vector_ids_where(space, *where)

    def _item_scores(self, items: Sequence[int], space: str, vector: np.ndarray) -> dict[int, float]:
        """Each item's score in a space, computed from its stored vectors (best chunk), for
        items a space's list did not reach; items without vectors there are left out."""
        rows_by_item = self.catalog.item_vector_rows(items, space)
        kinds = {i: row["kind"] for i, row in self.catalog.items_by_id(list(rows_by_item)).items()}
        return {
            item: max(
                self.scale.score(space, kinds[item], source, float(row @ vector))
                for row, source in rows
            )
            for item, rows in rows_by_item.items()
            if item in kinds
        }

    def _lift_keyword_matches(
        self, pairs: list[tuple[int, float]], vector: np.ndarray, matched: list[int], query: Query
    ) -> tuple[list[tuple[int, float]], dict[int, float]]:
        """The ranking with the keyword matches raised (`fusion.lift_keyword_matches`), and
        their (calibrated) cosines; those the vector search missed are scored here."""
        if not matched:
            return pairs, {}
        reached = {item for item, _ in pairs}
        missed = self._item_scores([item for item in matched if item not in reached], SEMANTIC, vector)
        # The model's default cut-off hides weak vector matches; a literal match is not weak
        # (IMG_2041 must find IMG_2041.jpg). A min_score the user gives holds for everything.
        floor = query.min_score if query.min_score is not None else -1.0
        return lift_keyword_matches(pairs, missed, matched, floor, self.scale.calibrated)

    def _cutoff(self, space: str, query: Query) -> float:
        if query.min_score is not None:
            return query.min_score
        return self.default_cutoffs.get(space, 0.0)

    def _fuse_scores(
        self,
        ranked: dict[str, list[tuple[int, float]]],
        weights: dict[str, float],
        wanted: dict[str, tuple[np.ndarray, float]],
        query: Query,
    ) -> list[tuple[int, float, dict[str, float]]]:
        """`fusion.fuse_means` of the lists, an item's score in a space its list did not reach
        computed from its stored vectors. Items under the cut-off after fusing join those it hid."""
        if len(ranked) == 1:
            return fuse_ranks(ranked, weights)
        per_item = scores_by_item(ranked)
        for space in ranked:
            missing = [item for item, scores in per_item.items() if space not in scores]
            for item, score in self._item_scores(missing, space, wanted[space][0]).items():
                per_item[item][space] = score
        cutoff = min(self._cutoff(space, query) for space in ranked)
        fused, below = fuse_means(per_item, weights, list(ranked), cutoff)
        for item, score in below.items():
            self._below[item] = max(score, self._below.get(item, -2.0))
        return fused
