"""Videos in an indexing run: probe and hash in a reader thread (a short film's keyframes and
soundtrack decoded there too), then keyframes and soundtrack through the model on the main
thread; the run (`ingest_encode`) commits the result like a recording: one item, its windows with
their time ranges. This module knows nothing of the run (its report, catalog, threads): it
takes what it needs as arguments and says what happened in its return values.

A video indexes what it can: a film whose soundtrack cannot be decoded keeps its pictures (and
the reverse), a file damaged part-way keeps what came before the damage. Only a video with
neither pictures nor sound the model could use is skipped, with the reason.

A film longer than a part (`video_commit_seconds`) goes through the model a part at a time
(`embed_parts`), each part committed as it is done, so a run killed part-way loses at most the
part it was in: the next run goes on at the part's start (`PreparedVideo.start`), the pictures
seeked to there, and re-encodes nothing committed. Keyframes are chosen afresh in each part,
the soundtrack is windowed afresh in each part, in every run: a film indexed in one go and a
film indexed across a kill hold the same windows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mmsearch.encoders.base import Encoder
from mmsearch.encoders.video import VideoEmbedding, embed_video
from mmsearch.errors import MediaError
from mmsearch.media import FoundFile, name_words
from mmsearch.media.audio import read_audio
from mmsearch.media.contents import file_hash_streamed
from mmsearch.media.text import number_words
from mmsearch.media.video import (
    FrameChoice,
    Keyframe,
    VideoInfo,
    keyframes,
    part_end,
    probe_video,
)
from mmsearch.store.catalog_items import ItemFacts

log = logging.getLogger(__name__)


@dataclass
class PreparedVideo:
    """What the reader thread learnt of a video; `frames`/`sound` are None when it is too long
    to decode ahead (it streams through the model instead)."""

    info: VideoInfo
    frames: list[Keyframe] | None = None
    sound: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    """Why part of it could not be used (its sound, its pictures), for the run's report."""
    start: float = 0.0
    """Where this run begins: the end of the parts an interrupted run committed (0: all)."""


@dataclass
class EmbeddedVideo:
    """What became of a video in the model: its embedding and facts with tags and transcript,
    or the reason it is skipped; `notes` say what part could not be used."""

    facts: ItemFacts
    embedding: VideoEmbedding | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)


class VideoStage:
    """The video steps of one indexing run.

    Args:
        choice: which frames are keyframes.
        decode_side: the shortest side worth decoding a picture to for an encoder (None: full).
        decode_whole_seconds: videos up to this long are decoded ahead in the reader thread.
        part_seconds: longer videos are committed in parts of this many seconds.
    """

    def __init__(
        self, choice: FrameChoice, decode_side: Callable[[Encoder], int | None],
        decode_whole_seconds: float, part_seconds: float = 120.0,
    ) -> None:
        self.choice = choice
        self._side = decode_side
        self._whole_seconds = min(decode_whole_seconds, part_seconds)
        self.part_seconds = part_seconds

    # -- reader thread ------------------------------------------------------------------------

    def prepare(
        self, encoder: Encoder, entry: FoundFile, root: str, *, start: float = 0.0
    ) -> tuple[ItemFacts, PreparedVideo]:
        """Hash (streamed: films are gigabytes), probe, and decode a short video ahead; a film
        an interrupted run committed up to `start` seconds goes on from there."""
        digest = file_hash_streamed(entry.path)
        info = probe_video(entry.path)
        usable_picture = info.has_picture and encoder.images
        usable_sound = info.has_sound and encoder.audio is not None
        if not usable_picture and not usable_sound:
            raise MediaError(entry.path, self._nothing_usable(encoder, info))
        facts = ItemFacts(
            entry.path, root, "video", entry.size, entry.mtime_ns, digest,
            width=info.width, height=info.height, taken_at=info.created,
            words=name_words(entry.path), duration=info.duration,
            sample_rate=info.sample_rate, channels=info.channels, codec=info.codec or None,
            frame_rate=info.frame_rate, rotation=info.rotation if info.has_picture else None,
        )
        video = PreparedVideo(info, start=start)
        if info.duration <= self._whole_seconds and not start:
            if usable_picture:
                video.frames = list(self._frames(entry.path, encoder, video))
            if usable_sound:
                assert encoder.audio is not None
                blocks = list(self._sound(entry.path, encoder.audio.sample_rate, video))
                video.sound = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        return facts, video

    @staticmethod
    def _nothing_usable(encoder: Encoder, info: VideoInfo) -> str:
        if not info.has_picture:
            return (
                f"only sound in this video, and the index's model ({encoder.spec.name}) has no "
                "audio encoder"
            )
        if not info.has_sound:
            return (
                f"only pictures in this video, and the index's model ({encoder.spec.name}) has "
                "no image encoder"
            )
        return f"the index's model ({encoder.spec.name}) has neither an image nor an audio encoder"

    def _frames(self, path: str, encoder: Encoder, video: PreparedVideo) -> Iterator[Keyframe]:
        """Keyframes (from `video.start`, chosen part by part); damage part-way ends them (with
        a note), it does not cost the rest."""
        try:
            yield from keyframes(
                path, self.choice, self._side(encoder), start=video.start, part=self.part_seconds
            )
        except MediaError as exc:
            video.notes.append(f"pictures: {exc.reason}")

    @staticmethod
    def _sound(path: str, rate: int, video: PreparedVideo) -> Iterator[np.ndarray]:
        try:
            yield from read_audio(path, rate=rate)
        except MediaError as exc:
            video.notes.append(f"sound: {exc.reason}")

    def in_parts(self, video: PreparedVideo) -> bool:
        """Whether a video is committed part by part (`embed_parts`) rather than whole."""
        return video.start > 0 or video.info.duration > self.part_seconds

    # -- main thread --------------------------------------------------------------------------

    def embed(
        self, encoder: Encoder, facts: ItemFacts, video: PreparedVideo, *, batch_size: int,
        read_text: Callable[[Any], str] | None = None,
    ) -> EmbeddedVideo:
        """Keyframes and soundtrack through the model (a long film streamed from the file).
        `read_text`: the words read in a keyframe's picture, when the run reads text."""
        path = facts.path
        info = video.info
        frames: Iterable[Keyframe] = ()
        if info.has_picture and encoder.images:
            frames = video.frames if video.frames is not None else self._frames(path, encoder, video)
        sound: Iterable[np.ndarray] | None = None
        if info.has_sound and encoder.audio is not None:
            if video.sound is not None:
                sound = [video.sound] if len(video.sound) else None
            else:
                sound = self._sound(path, encoder.audio.sample_rate, video)
        read = (lambda k: read_text(k.image)) if read_text is not None else None
        try:
            embedded = embed_video(
                encoder, frames, info.duration, sound, batch_size=batch_size, read_text=read,
            )
        except MediaError as exc:
            return EmbeddedVideo(facts, skipped=exc.reason, notes=video.notes)
        if not any(len(rows) for rows in embedded.vectors.values()):
            why = "; ".join(video.notes) or "no picture or sound the model could use"
            return EmbeddedVideo(facts, skipped=why)
        return EmbeddedVideo(_heard(facts, embedded), embedding=embedded, notes=video.notes)

    def embed_parts(
        self, encoder: Encoder, facts: ItemFacts, video: PreparedVideo, *, batch_size: int,
        read_text: Callable[[Any], str] | None = None,
    ) -> Iterator[EmbeddedVideo]:
        """A long film through the model a part at a time, from `video.start` on, each part's
        windows to be committed before the next is decoded: its facts say how far the film is
        done (`indexed_until`, None for the last part) and, past the first part, that its
        windows join those committed (`part_start`). Memory holds one part's rows at most.
        A film with nothing usable in it ends with `skipped` (and nothing committed before)."""
        path, info = facts.path, video.info
        pictures = _Upcoming(
            self._frames(path, encoder, video) if info.has_picture and encoder.images else ()
        )
        sound = None
        if info.has_sound and encoder.audio is not None:
            rate = encoder.audio.sample_rate
            sound = _SoundParts(self._sound(path, rate, video), rate, video.start)
        read = (lambda k: read_text(k.image)) if read_text is not None else None
        begin, rows = video.start, 0
        while True:
            end = part_end(begin, self.part_seconds)
            last = end >= info.duration - 1e-6
            until = None if last else end
            try:
                embedded = embed_video(
                    encoder, pictures.until(until), info.duration if last else end,
                    sound.until(until) if sound is not None else None, batch_size=batch_size,
                    read_text=read, sound_start=begin,
                )
            except MediaError as exc:  # damage: keep the parts before it
                if not rows and not video.start:
                    yield EmbeddedVideo(facts, skipped=exc.reason, notes=video.notes)
                    return
                video.notes.append(exc.reason)
                embedded, last = VideoEmbedding(), True
            rows += sum(len(r) for r in embedded.vectors.values())
            if last and not rows and not video.start:
                why = "; ".join(video.notes) or "no picture or sound the model could use"
                yield EmbeddedVideo(facts, skipped=why)
                return
            done = replace(
                _heard(facts, embedded), indexed_until=until,
                part_start=begin if begin > 0 else None,
            )
            yield EmbeddedVideo(done, embedding=embedded, notes=video.notes if last else [])
            if last:
                return
            begin = end


def _heard(facts: ItemFacts, embedded: VideoEmbedding) -> ItemFacts:
    """`facts` with the tags and transcript of the soundtrack (or of one part of it)."""
    said = " ".join(text for _, _, text in embedded.transcript)
    return replace(
        facts,
        tags=tuple(embedded.tags),
        transcript=tuple(embedded.transcript),
        content=number_words(said),  # "7" in a transcript is found by "seven" too
    )


class _Upcoming:
    """A film's keyframes handed out part by part: each part takes those before its end."""

    def __init__(self, frames: Iterable[Keyframe]) -> None:
        self._frames = iter(frames)
        self._next: Keyframe | None = None

    def until(self, end: float | None) -> Iterator[Keyframe]:
        """The keyframes before `end` seconds (None: all the rest)."""
        while True:
            if self._next is None:
                self._next = next(self._frames, None)
                if self._next is None:
                    return
            if end is not None and self._next.time >= end - 1e-6:
                return
            frame, self._next = self._next, None
            yield frame


class _SoundParts:
    """A film's soundtrack handed out part by part. It is decoded from the start and what
    comes before `start` is dropped: the samples of each part are then exactly those an
    uninterrupted run gives it (resampling has no seam), and decoding sound is cheap next to
    the model, which sees none of the dropped samples."""

    def __init__(self, blocks: Iterable[np.ndarray], rate: int, start: float) -> None:
        self._blocks = iter(blocks)
        self._rate = rate
        self._at = 0  # samples handed out or dropped
        self._skip = round(start * rate)
        self._carry: np.ndarray | None = None

    def until(self, end: float | None) -> Iterator[np.ndarray]:
        """The samples up to `end` seconds (None: all the rest), as blocks."""
        stop = None if end is None else round(end * self._rate)
        while True:
            block, self._carry = self._carry, None
            if block is None:
                block = next(self._blocks, None)
                if block is None:
                    return
            if self._at < self._skip:  # before this run's start: dropped
                drop = min(len(block), self._skip - self._at)
                self._at += drop
                block = block[drop:]
                if not len(block):
                    continue
            if stop is not None and self._at + len(block) > stop:
                take = max(0, stop - self._at)
                self._carry = block[take:]
                self._at += take
                if take:
                    yield block[:take]
                return
            self._at += len(block)
            yield block
