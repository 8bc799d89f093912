"""A video in the second stage: each of its best keyframes a candidate of its own, judged as a
photo is, the video taking the place and the moment of the best of them.

Judged whole (its first-stage score from its best row, its region scores from whichever
keyframe scored best on each), a video mixed the evidence of different shots, and its moment
stayed the first stage's even when the reranker preferred another shot. As candidates, a
video's keyframes compete as the photos they show: on `scripts/eval_video.py`'s fit half,
caption R@1 of the right video and moment 0.346 -> 0.371, together with frames shrunk by a
whole factor (`media/video.py`; ARCHITECTURE.md, "Video").
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from mmsearch.encoders.base import SEMANTIC, VIDEO_FRAME
from mmsearch.query.calibration import ScoreScale
from mmsearch.query.rerank import Candidate
from mmsearch.store.catalog import Catalog

KEYFRAMES_PER_VIDEO = 4
"""A video's best keyframes (by first-stage score) that join the second stage's candidates."""

SOUNDTRACK_COVERAGE = 0.21
"""A video found by its soundtrack keeps its place in the second stage when the soundtrack
covers the query's words this well (`Reranker.soundtrack_scores`: the mean over the words of
each word's best cosine with its windows); below, its keyframes judge it. Sound queries cover
0.25-0.5 ("the sound of a pig": sound 0.29, pig 0.57), captions a wrong soundtrack 0.05-0.15.
Chosen on `scripts/eval_video.py`'s fit half, with the soundtrack's map (`query.calibration`):
caption R@1 0.400 -> 0.438, sound R@1 0.750 either way; check half 0.429 -> 0.450 (0.91x the
photos'), sound 0.583 -> 0.667."""


class Keyframes:
    """The keyframe rows of the videos among one query's candidates, with their scores."""

    def __init__(
        self, catalog: Catalog, scale: ScoreScale, vector: np.ndarray, videos: Sequence[int],
        kind: str,
    ) -> None:
        rows = catalog.source_rows(list(videos), SEMANTIC, VIDEO_FRAME)
        self.rows: dict[int, list[tuple[int, float]]] = {
            item: [(vid, scale.score(SEMANTIC, kind, VIDEO_FRAME, float(v @ vector))) for vid, v in found]
            for item, found in rows.items()
        }
        """video -> (vector id, score) of each keyframe, in time order."""

    def expand(self, head: Sequence[Candidate], keep: Collection[int]) -> list[Candidate]:
        """`head` with each video that has keyframes replaced by its `KEYFRAMES_PER_VIDEO` best
        keyframes ((video, n) and their scores); videos in `keep` (found by what is heard in
        them) also stay as themselves, at their place. Best first."""
        out: list[Candidate] = []
        for item, score, per_space in head:
            frames = self.rows.get(item) if not isinstance(item, tuple) else None
            if not frames or item in keep:
                out.append((item, score, per_space))
            if not frames:
                continue
            best = sorted(range(len(frames)), key=lambda n: -frames[n][1])[:KEYFRAMES_PER_VIDEO]
            out.extend(
                ((item, n), frames[n][1], {**per_space, SEMANTIC: frames[n][1]})
                for n in best
            )
        return sorted(out, key=lambda c: -c[1])

    def regroup(self, ranked: Sequence[Candidate]) -> tuple[list[Candidate], dict[int, int]]:
        """One candidate per video, at the place of its best (a keyframe or itself), and the
        vector id of each video's chosen keyframe (its moment)."""
        seen: set[Any] = set()
        out: list[Candidate] = []
        moments: dict[int, int] = {}
        for key, score, per_space in ranked:
            item = key[0] if isinstance(key, tuple) else key
            if item in seen:
                continue
            seen.add(item)
            if isinstance(key, tuple):
                moments[item] = self.rows[item][key[1]][0]
            out.append((item, score, per_space))
        return out, moments
