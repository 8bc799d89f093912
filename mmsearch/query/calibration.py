"""Calibrated scores: one 0-1 scale for every space, kind of vector and model.

Raw cosines mean different things in different places: with the offline default a caption
and its photo meet at about 0.3 through the ImageNet label bridge, two paraphrases at 0.6 in
MiniLM, a sound and its label through the AudioSet bridge somewhere else again. A cut-off of
0.3 would keep nearly every document and drop most right photos.

So each kind of cosine gets its own logistic map, `score = 1 / (1 + exp(-(a * cosine + b)))`,
fitted on labelled dev pairs (right match vs wrong match) with the two classes weighted equally
(`fit_logistic`). The score is then the chance that a match of this cosine is a right one when
right and wrong were a priori equally common: 0.5 is where a right and a wrong match are equally
likely to score so, whatever the space. `min_score` and the model's cut-off are on that scale.
The maps are fitted per model by `scripts/calibrate.py` and stored in the model's preset
(`presets.json`, `calibration`).

The map is monotone, so within one kind of cosine the ranking is unchanged; across kinds
(images, documents and sounds in one `semantic` list) it is what makes them rank together.
A model without a fitted map (a checkpoint of the user's own), or the setting
`score_scale = "cosine"`, keeps raw cosines (-1 to 1), and its hits say so (`Hits.calibrated`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mmsearch.encoders.base import AUDIO_BRIDGE, SEMANTIC, VIDEO_FRAME, VIDEO_SOUND, VISUAL
from mmsearch.encoders.ocr import READ_TEXT
from mmsearch.media import AUDIO, IMAGE, TEXT, VIDEO


@dataclass(frozen=True)
class Logistic:
    """score = sigmoid(a * cosine + b); a > 0, so a higher cosine always scores higher."""

    a: float
    b: float

    def __call__(self, cosine: float) -> float:
        z = self.a * cosine + self.b
        # Written both ways round so that neither branch overflows exp.
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    def cosine_at(self, score: float) -> float:
        """The cosine that scores `score` (inverse map), for showing a cut-off as a cosine."""
        score = min(max(score, 1e-9), 1 - 1e-9)
        return (math.log(score / (1 - score)) - self.b) / self.a


def scale_key(space: str, kind: str, source: str | None) -> str:
    """Which map a vector's cosine takes: its source when a label bridge made it
    ("audio-bridge"); text for words read in an image and, in `semantic`, for a recording's
    transcript (both are MiniLM text against the query, like a document); else the item's kind
    ("image": the image label bridge in `semantic`, pixels in `visual`). A video's rows are its
    keyframes' (source "frame", and every `visual` row: the image scale) and its soundtrack's
    (the audio scale), so a film's moments score as the photo or the sound they are."""
    if source == READ_TEXT:
        return TEXT
    if source == VIDEO_FRAME:
        return IMAGE
    if source is not None:
        return source
    if kind == VIDEO:
        kind = IMAGE if space == VISUAL else AUDIO
    if space == SEMANTIC and kind == AUDIO:
        return TEXT
    return kind


BORROWED_MAPS = {VIDEO_SOUND: (AUDIO_BRIDGE, -0.5)}
"""Scale keys that borrow another's map, its log-odds shifted, when a preset has none of their
own. A soundtrack's label rows take a sound's map, 0.5 lower: a film's soundtrack is less
often what a query is after than a sound file's is, and at the sound's own map captions found
wrong films by their soundtracks. Chosen on `scripts/eval_video.py`'s fit half with the second stage's
`query.keyframes.SOUNDTRACK_COVERAGE`: caption R@1 (video and moment) 0.408 -> 0.438 there,
sound R@1 0.750 either way."""


class ScoreScale:
    """The maps of one model: space -> scale key (see `scale_key`) -> `Logistic`."""

    def __init__(self, table: Mapping[str, Mapping[str, Sequence[float]]] | None = None) -> None:
        self._maps = {
            space: {key: Logistic(float(ab[0]), float(ab[1])) for key, ab in keys.items()}
            for space, keys in (table or {}).items()
        }

    @property
    def calibrated(self) -> bool:
        """Whether scores are calibrated (False: raw cosines)."""
        return bool(self._maps)

    def score(self, space: str, kind: str, source: str | None, cosine: float) -> float:
        """The 0-1 score of a vector's cosine with the query."""
        maps = self._maps.get(space, {})
        key = scale_key(space, kind, source)
        found = maps.get(key)
        if found is None and key in BORROWED_MAPS:  # a preset fitted before the key existed
            borrowed, shift = BORROWED_MAPS[key]
            if borrowed in maps:
                found = Logistic(maps[borrowed].a, maps[borrowed].b + shift)
        if found is None:  # uncalibrated: the cosine itself
            return min(1.0, max(-1.0, cosine))
        return found(cosine)


def log_odds(score: float) -> float:
    """The log-odds of a 0-1 score (kept finite at 0 and 1)."""
    score = min(max(score, 1e-9), 1 - 1e-9)
    return math.log(score / (1 - score))


def from_log_odds(value: float) -> float:
    """The 0-1 score of a log-odds value (the inverse of `log_odds`)."""
    return Logistic(1.0, 0.0)(value)


def logistic_with_evidence(score: float, evidence: float) -> float:
    """A calibrated score after independent evidence worth `evidence` (the logarithm of its
    likelihood ratio) is added: odds multiply, so a weak match gains a lot and a sure one little."""
    return from_log_odds(log_odds(score) + evidence)


def fit_logistic(right: Sequence[float], wrong: Sequence[float], *, iterations: int = 50) -> Logistic:
    """Fit `Logistic` to cosines of right and wrong matches, each class weighing half.

    Newton's method on the weighted log-loss (two parameters: a 2x2 solve per step), with a
    small ridge so that perfectly separated dev data still gives a finite slope.

    Raises:
        ValueError: a class is empty, or the fit does not rank right matches higher.
    """
    if not len(right) or not len(wrong):
        raise ValueError("Fitting a score map needs right and wrong matches (one class is empty).")
    x = np.concatenate([np.asarray(right, np.float64), np.asarray(wrong, np.float64)])
    y = np.concatenate([np.ones(len(right)), np.zeros(len(wrong))])
    w = np.where(y == 1, 0.5 / len(right), 0.5 / len(wrong))
    design = np.stack([x, np.ones_like(x)], axis=1)
    ridge = np.diag([1e-4, 0.0])
    theta = np.zeros(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(design @ theta)))
        gradient = design.T @ (w * (p - y)) + ridge @ theta
        hessian = (design * (w * p * (1 - p))[:, None]).T @ design + ridge
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-9:
            break
    if not theta[0] > 0:
        raise ValueError(
            "Right matches do not score higher than wrong ones here; the map would invert the "
            "ranking. Check the dev data's relevance labels."
        )
    return Logistic(float(theta[0]), float(theta[1]))
