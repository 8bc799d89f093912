"""The typed values the public API returns: search hits, indexing reports, progress, stats."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MAX_MOMENTS = 5
"""How many other matching moments a hit on a recording or video lists."""


@dataclass(frozen=True)
class Hit:
    """One search result.

    `score` is the cosine similarity when one vector space answered the query, and a fused
    rank score (higher is better) when several did; `scores` holds each space's cosine.
    """

    path: str
    score: float
    kind: str
    scores: dict[str, float] = field(default_factory=dict)
    size: int | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    duration: float | None = None
    """Length of a recording or video, in seconds (None for images and documents)."""
    start: float | None = None
    """Where in a recording or video the match is, in seconds from its start (None for
    images and documents): the time range of its best window (a keyframe's shot, a sound
    window, a transcript chunk)."""
    end: float | None = None
    moments: tuple[tuple[float, float, float], ...] = ()
    """Other places in the recording or video that match, as (start, end, score), best first
    (at most `MAX_MOMENTS`, none overlapping the best, `start`-`end`, or each other)."""
    id: int | None = None
    """The item's id in this index's catalog (stable while the file stays indexed; moves keep
    it): `Library.item(id)` looks it up."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Progress:
    """What an indexing run is doing now; shells draw it (e.g. a rich progress bar).

    `phase` is one of "scan", "hash", "encode", "save".
    """

    phase: str
    done: int
    total: int
    path: str | None = None
    part_done: int = 0
    """Inside a large file (`path`): chunks encoded so far, of `part_total` (0 when not shown)."""
    part_total: int = 0


@dataclass
class IndexReport:
    """What one `Library.index` run did."""

    scanned: int = 0
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    encoded: int = 0
    """Files that went through the model (added + updated, minus failures)."""
    resumed: int = 0
    """Films an interrupted run left part-way that went on from where it stopped."""
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    """Indexed folders found missing or empty (unmounted?): skipped, their items kept."""
    notes: list[str] = field(default_factory=list)
    """Sentences for the user: folders offline or moved, and what to do about them."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ItemInfo:
    """Everything the index knows of one file (`mmsearch info PATH`)."""

    path: str
    kind: str
    size: int
    status: str
    error: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    duration: float | None = None
    id: int | None = None
    sample_rate: int | None = None
    channels: int | None = None
    codec: str | None = None
    tags: list[tuple[str, float]] = field(default_factory=list)
    """Sound labels with scores, best first."""
    transcript: list[tuple[float, float, str]] = field(default_factory=list)
    """What is said: (start, end, text) segments."""
    read_text: list[str] = field(default_factory=list)
    """Lines of text read in an image (with `read_text_in_images` on), top to bottom."""
    frame_rate: float | None = None
    """Videos: frames per second."""
    rotation: int | None = None
    """Videos: degrees turned clockwise for display (width and height are as shown)."""
    moments: list[tuple[float, float]] = field(default_factory=list)
    """Videos: the time ranges of the keyframes that stand for its shots, in order."""
    indexed_until: float | None = None
    """A film an interrupted run left part-way: the seconds from its start that are indexed
    (and searchable); the next `index` run goes on from there. None: the whole file."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Skipped:
    """A file that could not be indexed, with the reason."""

    path: str
    reason: str


@dataclass(frozen=True)
class PartialFilm:
    """A film an interrupted indexing run left part-way (see `Stats.partial`)."""

    path: str
    indexed_until: float
    """Seconds from its start that are indexed and searchable."""
    duration: float | None


@dataclass(frozen=True)
class Stats:
    """What an index holds (`mmsearch info`)."""

    path: str
    model: str
    items: dict[str, int]
    failed: int
    roots: list[str]
    spaces: dict[str, dict[str, Any]]
    offline_roots: list[str]
    """Indexed folders that were missing or empty at the last run (their items are kept)."""
    exclusions: list[str]
    """Paths and glob patterns that are never indexed (`mmsearch remove`, `mmsearch exclude`)."""
    catalog_bytes: int
    index_bytes: int
    media_bytes: int
    partial: list[PartialFilm] = field(default_factory=list)
    """Films an interrupted run left part-way, searchable for what is indexed; the next
    `index` run goes on where each stopped."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
