"""Videos in an indexing run: probe and hash in a reader thread (a short film's keyframes and
soundtrack decoded there too), then keyframes and soundtrack through the model on the main
thread; the run (`ingest_encode`) commits the result like a recording: one item, its windows with
their time ranges. This module knows nothing of the run (its report, catalog, threads): it
takes what it needs as arguments and says what happened in its return values.

A video indexes what it can: a film whose soundtrack cannot be decoded keeps its pictures (and
the reverse), a file damaged part-way keeps what came before the damage. Only a video with
neither pictures nor sound the model could use is skipped, with the reason.
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
from mmsearch.media.video import FrameChoice, Keyframe, VideoInfo, keyframes, probe_video
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
    """

    def __init__(
        self, choice: FrameChoice, decode_side: Callable[[Encoder], int | None],
        decode_whole_seconds: float,
    ) -> None:
        self.choice = choice
        self._side = decode_side
        self._whole_seconds = decode_whole_seconds

    # -- reader thread ------------------------------------------------------------------------

    def prepare(self, encoder: Encoder, entry: FoundFile, root: str) -> tuple[ItemFacts, PreparedVideo]:
        """Hash (streamed: films are gigabytes), probe, and decode a short video ahead."""
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
        video = PreparedVideo(info)
        if info.duration <= self._whole_seconds:
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
        """Keyframes; damage part-way ends them (with a note), it does not cost the rest."""
        try:
            yield from keyframes(path, self.choice, self._side(encoder))
        except MediaError as exc:
            video.notes.append(f"pictures: {exc.reason}")

    @staticmethod
    def _sound(path: str, rate: int, video: PreparedVideo) -> Iterator[np.ndarray]:
        try:
            yield from read_audio(path, rate=rate)
        except MediaError as exc:
            video.notes.append(f"sound: {exc.reason}")

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
        said = " ".join(text for _, _, text in embedded.transcript)
        facts = replace(
            facts,
            tags=tuple(embedded.tags),
            transcript=tuple(embedded.transcript),
            content=number_words(said),
        )
        return EmbeddedVideo(facts, embedding=embedded, notes=video.notes)
