"""A video through an index's model: its keyframes through the image side, its soundtrack
through the audio side, each row with the time range it stands for.

A keyframe stands for its shot: from its time to the next keyframe's (the last to the end of the
film). Sound windows and transcript chunks keep the audio side's own ranges. Frames are encoded
in batches as they arrive, so a four-hour film costs one batch of pictures in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from mmsearch.encoders.base import (
    AUDIO_BRIDGE,
    SEMANTIC,
    VIDEO_FRAME,
    VIDEO_SOUND,
    AudioEmbedding,
    Encoder,
    Span,
)
from mmsearch.encoders.ocr import READ_TEXT
from mmsearch.encoders.regions import RegionCodes
from mmsearch.media.video import Keyframe


@dataclass
class VideoEmbedding(AudioEmbedding):
    """`AudioEmbedding`'s rows, tags and transcript, plus the keyframes' time ranges."""

    moments: list[Span] = field(default_factory=list)
    frame_regions: list[RegionCodes | None] = field(default_factory=list)
    """Per keyframe (as `moments`), what its regions show, for the reranker (None: the model
    has no region outputs)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Time spent: "frames" (decoding and choosing them, as they are pulled), "image"
    (preparing and encoding them), "audio" (the soundtrack through the audio side)."""


def _append(out: AudioEmbedding, space: str, rows: np.ndarray, spans: list[Span],
            sources: list[str | None]) -> None:
    if not len(rows):
        return
    have = out.vectors.get(space)
    out.vectors[space] = rows if have is None else np.concatenate([have, rows])
    out.spans.setdefault(space, []).extend(spans)
    out.sources.setdefault(space, []).extend(sources)


def _timed(frames: Iterable[Keyframe], seconds: dict[str, float]) -> Iterator[Keyframe]:
    it = iter(frames)
    while True:
        t = time.perf_counter()
        try:
            frame = next(it)
        except StopIteration:
            seconds["frames"] = seconds.get("frames", 0.0) + time.perf_counter() - t
            return
        seconds["frames"] = seconds.get("frames", 0.0) + time.perf_counter() - t
        yield frame


def embed_video(
    encoder: Encoder,
    frames: Iterable[Keyframe],
    duration: float,
    sound: Iterable[np.ndarray] | None,
    *,
    batch_size: int = 32,
    read_text: Callable[[Keyframe], str] | None = None,
    sound_start: float = 0.0,
) -> VideoEmbedding:
    """Rows for every keyframe (each image space; `semantic` also for the words read in it
    when `read_text` is given) and for the soundtrack (`sound`: mono blocks at the audio
    side's rate, None for a film without sound or a model without an audio side).

    One part of a film (committed in parts) passes its keyframes, `duration` as where the part
    ends (its last keyframe's range ends there), and `sound` from `sound_start` seconds on.
    """

    out = VideoEmbedding()
    seconds = out.seconds
    pending: list[Keyframe] = []
    frame_spans: list[Span] = []

    def flush(ends: list[float]) -> None:
        t = time.perf_counter()
        arrays = [encoder.prepare_image(k.image) for k in pending]
        vectors, regions = encoder.embed_images_with_regions(arrays)
        out.frame_regions.extend(regions)
        spans = [(k.time, end) for k, end in zip(pending, ends)]
        frame_spans.extend(spans)
        for space, rows in vectors.items():
            made_by: list[str | None] = [VIDEO_FRAME if space == SEMANTIC else None] * len(rows)
            _append(out, space, rows, spans, made_by)
        if read_text is not None and SEMANTIC in vectors:
            texts = [(span, read_text(k)) for k, span in zip(pending, spans)]
            texts = [(span, text) for span, text in texts if text]
            if texts:
                rows = encoder.embed_texts([text for _, text in texts])
                _append(out, SEMANTIC, rows, [span for span, _ in texts], [READ_TEXT] * len(texts))
        pending.clear()
        seconds["image"] = seconds.get("image", 0.0) + time.perf_counter() - t

    # A keyframe's range ends where the next begins: a batch is encoded once the frame after
    # its last has arrived (or the film ended).
    for keyframe in _timed(frames, seconds):
        if len(pending) > batch_size:
            last = pending.pop()
            flush([k.time for k in pending[1:]] + [last.time])
            pending.append(last)
        pending.append(keyframe)
    if pending:
        end = max(duration, pending[-1].time)
        flush([k.time for k in pending[1:]] + [end])
    out.moments = frame_spans
    if sound is not None and encoder.audio is not None:
        t = time.perf_counter()
        heard = encoder.audio.embed_recording(sound)
        at = sound_start
        for space, rows in heard.vectors.items():
            sources = [
                VIDEO_SOUND if source == AUDIO_BRIDGE else source
                for source in heard.sources.get(space) or [None] * len(rows)
            ]
            spans = [(at + t0, at + t1) for t0, t1 in heard.spans.get(space, [])]
            _append(out, space, rows, spans, sources)
        out.tags = heard.tags
        out.transcript = [(at + t0, at + t1, text) for t0, t1, text in heard.transcript]
        seconds["audio"] = time.perf_counter() - t
    return out
