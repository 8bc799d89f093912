"""Pooling a recording's per-frame features into overlapping windows as the frames stream in.

Audio models describe short frames (YAMNet: 0.96 s every 0.48 s); search works on windows of a
few seconds, so a hit can say where it is. Windows are emitted as soon as they are complete, and
frames no window needs any more are dropped: an hour-long recording never sits in memory whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Span = tuple[float, float]


@dataclass
class WindowPooler:
    """Collects frames (start times plus feature rows) and hands out complete windows.

    A window [t, t + window) holds the frames starting in [t, t + window - frame_length]; windows
    start every `hop` seconds. A recording no longer than one window is one window.
    """

    window: float
    hop: float
    frame_length: float
    _starts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _features: list[np.ndarray] = field(default_factory=list)
    _next: float = 0.0
    _emitted: int = 0

    def push(self, starts: np.ndarray, *features: np.ndarray) -> list[tuple[Span, list[np.ndarray]]]:
        """Add frames; returns the windows they complete."""
        if len(starts) == 0:
            return []
        self._starts = np.concatenate([self._starts, starts])
        self._features = (
            [np.concatenate([old, new]) for old, new in zip(self._features, features)]
            if self._features
            else [np.asarray(f) for f in features]
        )
        out = []
        # A window is complete once a frame at or past its last slot has arrived.
        while self._starts[-1] >= self._next + self.window - self.frame_length + self.hop:
            out.append(self._take(self._next, self._next + self.window))
            self._next += self.hop
            self._drop_before(self._next)
        return out

    def finish(self, duration: float) -> list[tuple[Span, list[np.ndarray]]]:
        """The last window(s), once the recording's length is known."""
        if len(self._starts) == 0:
            return []
        if self._emitted == 0 and duration <= self.window:
            return [self._take(0.0, duration)]
        out = []
        while self._next + self.window < duration:
            out.append(self._take(self._next, self._next + self.window))
            self._next += self.hop
        start = max(self._next, duration - self.window) if self._emitted else 0.0
        out.append(self._take(start, duration))
        return out

    def _take(self, start: float, end: float) -> tuple[Span, list[np.ndarray]]:
        last = max(end - self.frame_length, start)
        inside = (self._starts >= start - 1e-6) & (self._starts <= last + 1e-6)
        if not inside.any():  # a window shorter than a frame: the frame nearest its start
            inside = np.zeros(len(self._starts), bool)
            inside[int(np.argmin(np.abs(self._starts - start)))] = True
        self._emitted += 1
        return (start, end), [f[inside] for f in self._features]

    def _drop_before(self, t: float) -> None:
        keep = self._starts >= t - 1e-6
        if not keep.all() and keep.any():
            self._starts = self._starts[keep]
            self._features = [f[keep] for f in self._features]
