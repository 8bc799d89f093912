"""Run a query: embed its parts into their spaces, search each, cut off, fuse, build hits.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.encoders.base import ACOUSTIC, SEMANTIC, VIDEO_FRAME, VISUAL, Encoder, l2_normalise
from mmsearch.errors import MediaError, QueryError
from mmsearch.media import AUDIO, IMAGE, TEXT, VIDEO
from mmsearch.media.paths import canonical_path
from mmsearch.query.calibration import ScoreScale, from_log_odds, log_odds, logistic_with_evidence
from mmsearch.query.filters import Filters
from mmsearch.query.keywords import fts_expression, substring_expression, unspaced_expression
from mmsearch.query.language import check_query_language
from mmsearch.query.parse import ParsedQuery, Term, parse_query
from mmsearch.query.rerank import Reranker
from mmsearch.query.words import remember_words, uncached_words
from mmsearch.results import MAX_MOMENTS, Hit
from mmsearch.store.catalog import Catalog
from mmsearch.store.spaces import SpaceSet

if TYPE_CHECKING:
    from mmsearch.config import Settings

log = logging.getLogger(__name__)

NEGATIVE_WEIGHT = 0.5
"""How hard a negative term pushes away, relative to a positive term of weight 1."""
RRF_K = 60
"""Reciprocal-rank-fusion constant (Cormack et al. 2009): flattens the head of each list."""
KEYWORD_BONUS = 0.5
"""For raw cosines (uncalibrated models): keyword matches (every content word of the query in
the item's name or text) move this fraction of the way from their score to 1: a literal match is
strong evidence the embedding can miss (names, places, rare words). Measured against reciprocal-rank fusion of the keyword list
(`keyword_fusion = "rrf"`) on tuxpaint, whose file names spell their captions: 0.1 gave image
mAP 0.314 / sound mAP 0.291, 0.3 0.476 / 0.435, 0.5 0.493 / 0.705, RRF 0.495 / 0.735; coco
(names without words) and esc50 were unchanged by all. 0.5 comes close to RRF while scores stay
on the scale that `min_score` and users read."""
KEYWORD_LOG_ODDS = 4.5
"""On a calibrated scale, a keyword match is evidence added in log-odds (its likelihood ratio,
about 90, multiplies the match's odds: 0.1 becomes 0.91, 0.5 becomes 0.99). `KEYWORD_BONUS`
was tuned on cosines; on calibrated scores it fell short (tuxpaint image mAP 0.304). Measured on
tuxpaint (reranker on, `scripts/eval_retrieval.py --only tuxpaint,tuxpaint_sounds`): 1.5 gave
image mAP 0.345 (reranking on probabilities), and with the reranker fed log-odds 3.0 gave 0.449
/ sound mAP 0.724, 4.5 0.476 / 0.724, 6.0 0.491 / 0.724; coco unchanged. 4.5 is picked on that
same data; 6 would make any literal match outrank every other kind of evidence."""
KEYWORD = "keyword"
_EXAMPLE_SECONDS = 600.0
"""An example sound longer than this is judged by its first ten minutes."""
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
        self._encoder = encoder
        self.settings = settings
        self.default_cutoffs = default_cutoffs
        self.scale = scale or ScoreScale()
        self._best_vector: dict[tuple[str, int], int] = {}  # (space, item) -> its best vector id
        self._best_source: dict[tuple[str, int], str | None] = {}  # ... -> that vector's source
        self._below: dict[int, float] = {}  # items seen only under the cut-off -> best score

    def search(self, query: Query) -> Hits:
        if query.k < 1:
            raise QueryError(f"k must be at least 1, not {query.k}.")
        terms = list(query.terms)
        wanted = self._query_vectors(query, terms)
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
            fused = self._fuse_ranks(ranked, weights)
        if self.reranker is not None and SEMANTIC in wanted:  # second stage (query/rerank.py)
            matches = set(keyword_cosines) | {item for item, _ in ranked.get(KEYWORD, ())}
            words = " ".join(t.text for t in terms if not t.negative)
            proposed = self._proposed(words, wanted, fused, query)
            fused = self._reranked(words, wanted[SEMANTIC][0], fused, matches, proposed)
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

    def _reranked(
        self,
        words: str,
        vector: np.ndarray,
        fused: list[tuple[int, float, dict[str, float]]],
        keyword_matches: set[int],
        proposed: list[tuple[int, float, dict[str, float]]],
    ) -> list[tuple[int, float, dict[str, float]]]:
        """The reranker's order and scores. It adds z-scores and maps the sum back onto the
        first stage's mean and spread; calibrated scores go to it as log-odds, where adding
        evidence is what it means (probabilities bunch up near 1 and lose the first stage's
        keyword evidence in a z-score), and come back as 0-1 scores."""
        assert self.reranker is not None
        # A video the words found by its soundtrack or its speech is not judged by its
        # keyframes (a film whose soundtrack barks shows no dog) and keeps its place. With the
        # frames judging every video, "the sound of a dog barking" found its film first for 1
        # of 12 check-half films, against 8 of 12 so (scripts/eval_video.py).
        heard = {
            item for item, _, _ in fused
            if self._best_source.get((SEMANTIC, item), VIDEO_FRAME) != VIDEO_FRAME
        }
        if not self.scale.calibrated:
            return self.reranker.rerank(words, vector, fused, keyword_matches, proposed, heard)
        reranked = self.reranker.rerank(
            words, vector, [(item, log_odds(score), per) for item, score, per in fused],
            keyword_matches, [(item, log_odds(score), per) for item, score, per in proposed],
            heard,
        )
        return [(item, from_log_odds(value), per) for item, value, per in reranked]

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

    # -- embedding ----------------------------------------------------------------------------

    def _query_vectors(
        self, query: Query, terms: list[Term]
    ) -> dict[str, tuple[np.ndarray, float]]:
        """space -> (unit query vector, fusion weight)."""
        if not terms and not query.images and not query.audios and not query.vectors:
            raise QueryError(
                "Nothing to search for: give query text, an example image or sound, or several."
            )
        out: dict[str, tuple[np.ndarray, float]] = {
            space: (l2_normalise(vector), 1.0) for space, vector in query.vectors.items()
        }
        if terms:
            encoder = self._encoder()
            check_query_language([t.text for t in terms], encoder.languages, encoder.spec.name)
            signed = np.array(
                [(-NEGATIVE_WEIGHT if t.negative else 1.0) * t.weight for t in terms], np.float32
            )
            texts = [t.text for t in terms]
            # Most models have one text space; a composite has one per text tower, each searched.
            for space, embed in encoder.text_spaces().items():
                if space == SEMANTIC or space in self.spaces.dims:
                    words = self._words_with_query(encoder, terms) if space == SEMANTIC else []
                    vectors = embed(texts + words)
                    if words:
                        remember_words(encoder, words, vectors[len(texts) :])
                    out[space] = (l2_normalise(signed @ vectors[: len(texts)]), 1.0)
        if query.images:
            visual = np.stack([self._example_image(p) for p in query.images])
            out[VISUAL] = (l2_normalise(visual.sum(axis=0)), query.image_weight)
        if query.audios:
            acoustic = np.stack([self._example_audio(p) for p in query.audios])
            out[ACOUSTIC] = (l2_normalise(acoustic.sum(axis=0)), query.audio_weight)
        return out

    def _words_with_query(self, encoder: Encoder, terms: list[Term]) -> list[str]:
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

    def _stored_vector(self, path: str, space: str) -> np.ndarray | None:
        """An indexed, unchanged example's own vector (mean of its chunks), else None."""
        row = self.catalog.item_by_path(path)
        stat = Path(path).stat()
        if row and row.status == "ok" and row.size == stat.st_size and row.mtime_ns == stat.st_mtime_ns:
            stored = self.catalog.item_vectors([row.id], space).get(row.id)
            if stored is not None:
                return l2_normalise(stored.mean(axis=0))
        return None

    def _example_audio(self, path: str) -> np.ndarray:
        """The example sound's acoustic vector: from the catalog when it is indexed and unchanged."""
        absolute = canonical_path(path)
        if not Path(absolute).is_file():
            raise QueryError(f"Example sound {path} does not exist.")
        stored = self._stored_vector(absolute, ACOUSTIC)
        if stored is not None:
            return stored
        encoder = self._encoder()
        if encoder.audio is None or ACOUSTIC not in encoder.audio.spaces:
            raise QueryError(
                f"This index's model ({encoder.spec.name}) cannot compare sounds; search by text."
            )
        try:
            from mmsearch.media.audio import decode_audio  # the audio stack: only for examples

            waveform, _ = decode_audio(
                absolute, rate=encoder.audio.sample_rate, max_seconds=_EXAMPLE_SECONDS
            )
            vectors = encoder.audio.example_vectors(encoder.audio.embed_recording([waveform]))
        except MediaError as exc:
            raise QueryError(f"Example sound {path} cannot be used: {exc.reason}") from exc
        if ACOUSTIC not in vectors:
            raise QueryError(f"Example sound {path} cannot be used: no audio the model could use.")
        return vectors[ACOUSTIC]

    def _example_image(self, path: str) -> np.ndarray:
        """The example's visual vector: from the catalog when it is indexed and unchanged."""
        absolute = canonical_path(path)
        file = Path(absolute)
        if not file.is_file():
            raise QueryError(f"Example image {path} does not exist.")
        stored = self._stored_vector(absolute, VISUAL)
        if stored is not None:
            return stored
        encoder = self._encoder()
        if not encoder.images:
            raise QueryError(
                f"This index's model ({encoder.spec.name}) cannot compare images; search by text."
            )
        from mmsearch.media.images import decode_image  # PIL: only for example images

        try:
            data = file.read_bytes()
            decoded = decode_image(
                data, path=absolute, max_pixels=self.settings.max_image_pixels,
                min_side=encoder.input_size,
            )
        except (MediaError, OSError) as exc:
            reason = exc.reason if isinstance(exc, MediaError) else str(exc)
            raise QueryError(f"Example image {path} cannot be used: {reason}") from exc
        vectors = encoder.embed_images([encoder.prepare_image(decoded.image)])
        return np.asarray(vectors[VISUAL][0], dtype=np.float32)

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
                self._best_source[(space, item)] = source
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
        """Score fusion: raise the keyword matches (see `KEYWORD_LOG_ODDS`); those the vector
        search missed join, if their raised score passes the cut-off. Scores stay on their
        scale, so they read the same and `min_score` means the same with or without keyword
        evidence.

        Returns the new ranking and the (calibrated) cosines of the raised items.
        """
        if not matched:
            return pairs, {}
        scores = dict(pairs)
        scores.update(
            self._item_scores([item for item in matched if item not in scores], SEMANTIC, vector)
        )
        cosines = {item: scores[item] for item in matched if item in scores}
        for item, score in cosines.items():
            scores[item] = self._with_keyword_evidence(score)
        # The model's default cut-off hides weak vector matches; a literal match is not weak
        # (IMG_2041 must find IMG_2041.jpg). A min_score the user gives holds for everything.
        floor = query.min_score if query.min_score is not None else -1.0
        ranked = [(i, s) for i, s in scores.items() if i not in cosines or s >= floor]
        return sorted(ranked, key=lambda kv: -kv[1]), cosines

    def _with_keyword_evidence(self, score: float) -> float:
        if not self.scale.calibrated:
            return score + KEYWORD_BONUS * (1.0 - score)
        return logistic_with_evidence(score, KEYWORD_LOG_ODDS)

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
        """(item, score, per-space scores), best first: the weighted mean of the item's
        calibrated scores (0 in a space where it has no vector: a document does not look like
        the example photo). Items under the cut-off after fusing join those it hid."""
        if len(ranked) == 1:
            return self._fuse_ranks(ranked, weights)
        per_item: dict[int, dict[str, float]] = {}
        for space, pairs in ranked.items():
            for item, score in pairs:
                per_item.setdefault(item, {})[space] = score
        for space in ranked:
            missing = [item for item, scores in per_item.items() if space not in scores]
            for item, score in self._item_scores(missing, space, wanted[space][0]).items():
                per_item[item][space] = score
        total = sum(weights[space] for space in ranked)
        cutoff = min(self._cutoff(space, query) for space in ranked)
        fused = []
        for item, scores in per_item.items():
            score = sum(weights[s] * scores.get(s, 0.0) for s in ranked) / total
            if score < cutoff:
                self._below[item] = max(score, self._below.get(item, -2.0))
            else:
                fused.append((item, score, scores))
        return sorted(fused, key=lambda entry: -entry[1])

    @staticmethod
    def _fuse_ranks(
        ranked: dict[str, list[tuple[int, float]]], weights: dict[str, float]
    ) -> list[tuple[int, float, dict[str, float]]]:
        """(item, score, per-space scores), best first, by weighted reciprocal-rank fusion.
        One space keeps its score."""
        per_item: dict[int, dict[str, float]] = {}
        for space, pairs in ranked.items():
            for item, score in pairs:
                per_item.setdefault(item, {})[space] = score
        if len(ranked) == 1:
            (pairs,) = ranked.values()
            return [(item, score, per_item[item]) for item, score in pairs]
        fused: dict[int, float] = {}
        for space, pairs in ranked.items():
            for rank, (item, _) in enumerate(pairs):
                fused[item] = fused.get(item, 0.0) + weights[space] / (RRF_K + rank + 1)
        order = sorted(fused.items(), key=lambda kv: -kv[1])
        return [(item, score, per_item[item]) for item, score in order]
