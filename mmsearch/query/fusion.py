"""The arithmetic of fusing result lists, with no I/O: weighted means of calibrated scores,
reciprocal-rank fusion, and the evidence a keyword match adds. The searcher (`search.py`) reads
the scores these need from the vector stores and the catalog."""

from __future__ import annotations

from mmsearch.query.calibration import logistic_with_evidence

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

Ranked = list[tuple[int, float, dict[str, float]]]
"""(item, score, per-space scores), best first."""


def scores_by_item(ranked: dict[str, list[tuple[int, float]]]) -> dict[int, dict[str, float]]:
    """item -> its score in each space whose list holds it."""
    per_item: dict[int, dict[str, float]] = {}
    for space, pairs in ranked.items():
        for item, score in pairs:
            per_item.setdefault(item, {})[space] = score
    return per_item


def fuse_ranks(ranked: dict[str, list[tuple[int, float]]], weights: dict[str, float]) -> Ranked:
    """The lists fused by weighted reciprocal-rank fusion. One space keeps its score."""
    per_item = scores_by_item(ranked)
    if len(ranked) == 1:
        (pairs,) = ranked.values()
        return [(item, score, per_item[item]) for item, score in pairs]
    fused: dict[int, float] = {}
    for space, pairs in ranked.items():
        for rank, (item, _) in enumerate(pairs):
            fused[item] = fused.get(item, 0.0) + weights[space] / (RRF_K + rank + 1)
    order = sorted(fused.items(), key=lambda kv: -kv[1])
    return [(item, score, per_item[item]) for item, score in order]


def fuse_means(
    per_item: dict[int, dict[str, float]],
    weights: dict[str, float],
    spaces: list[str],
    cutoff: float,
) -> tuple[Ranked, dict[int, float]]:
    """The weighted mean of each item's calibrated scores in `spaces` (0 in a space where it
    has no vector: a document does not look like the example photo), best first, and the
    items whose mean fell under `cutoff`, with it."""
    total = sum(weights[space] for space in spaces)
    fused: Ranked = []
    below: dict[int, float] = {}
    for item, scores in per_item.items():
        score = sum(weights[s] * scores.get(s, 0.0) for s in spaces) / total
        if score < cutoff:
            below[item] = score
        else:
            fused.append((item, score, scores))
    return sorted(fused, key=lambda entry: -entry[1]), below


def with_keyword_evidence(score: float, calibrated: bool) -> float:
    """`score` raised by a keyword match (`KEYWORD_LOG_ODDS`, or `KEYWORD_BONUS` for cosines)."""
    if not calibrated:
        return score + KEYWORD_BONUS * (1.0 - score)
    return logistic_with_evidence(score, KEYWORD_LOG_ODDS)


def lift_keyword_matches(
    pairs: list[tuple[int, float]],
    missed: dict[int, float],
    matched: list[int],
    floor: float,
    calibrated: bool,
) -> tuple[list[tuple[int, float]], dict[int, float]]:
    """Score fusion: raise the keyword matches (`matched`) in one space's ranking (`pairs`);
    those the vector search missed (scored in `missed`) join, if their raised score reaches
    `floor`. Scores stay on their scale, so they read the same and `min_score` means the same
    with or without keyword evidence.

    Returns the new ranking and the (calibrated) cosines of the raised items.
    """
    scores = dict(pairs)
    scores.update(missed)
    cosines = {item: scores[item] for item in matched if item in scores}
    for item, score in cosines.items():
        scores[item] = with_keyword_evidence(score, calibrated)
    ranked = [(i, s) for i, s in scores.items() if i not in cosines or s >= floor]
    return sorted(ranked, key=lambda kv: -kv[1]), cosines
