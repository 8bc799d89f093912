"""The reader threads of an indexing run: read, hash, decode and prepare one file for the model
(an image with the text read in it, a document as chunks, a short recording whole; videos
through `ingest_video`). A file that cannot be read comes back with the reason instead."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.config import Settings
from mmsearch.encoders.base import Encoder
from mmsearch.encoders.ocr import READ_SIDE as OCR_SIDE
from mmsearch.encoders.ocr import ReadWord, TextReader
from mmsearch.errors import MediaError, ModelUnavailableError
from mmsearch.ingest_run import RunState
from mmsearch.media import (
    AUDIO,
    IMAGE,
    TEXT,
    VIDEO,
    FoundFile,
    chunk_text,
    decode_image,
    decode_text,
    name_words,
)
from mmsearch.media.audio import probe_audio, read_audio
from mmsearch.media.contents import file_hash, file_hash_streamed, read_bytes
from mmsearch.media.text import WORD
from mmsearch.store.catalog_items import ItemFacts

if TYPE_CHECKING:
    from mmsearch.ingest_video import PreparedVideo, VideoStage

log = logging.getLogger(__name__)

_MAX_FTS_CHARS = 1_000_000  # extracted text kept for keyword search, per document
_WORD = WORD  # as chunk_text counts: a character of Chinese, Japanese, Thai is a word
_DECODE_WHOLE_SECONDS = 120.0
"""Recordings up to this long are decoded whole in a reader thread (overlapping the model);
longer ones stream through the model in blocks, so an hour never sits in memory."""


@dataclass
class Prepared:
    """A decoded file, ready for the model."""

    facts: ItemFacts
    image: np.ndarray | None = None
    chunks: list[str] = field(default_factory=list)
    audio: np.ndarray | None = None
    """A short recording decoded whole (at the audio model's rate); long ones stream later."""
    is_audio: bool = False
    video: PreparedVideo | None = None
    """A video's facts and, when short, its keyframes decoded already (see ingest_video)."""


class Decoder:
    """Prepares files for one run's model, in reader threads."""

    def __init__(self, settings: Settings, state: RunState) -> None:
        self.settings = settings
        self._state = state
        self.reader = TextReader() if settings.read_text_in_images else None
        self._lock = threading.Lock()
        self._video_stage: VideoStage | None = None

    @property
    def videos(self) -> VideoStage:
        """The video stage (PyAV and the frame chooser load only for a run that meets a video)."""
        if self._video_stage is None:
            from mmsearch.ingest_video import VideoStage
            from mmsearch.media.video import FrameChoice

            choice = FrameChoice(
                every=self.settings.video_keyframe_seconds, scene=self.settings.video_scene_change
            )
            with self._lock:
                if self._video_stage is None:
                    self._video_stage = VideoStage(
                        choice, self.frame_side, _DECODE_WHOLE_SECONDS,
                        self.settings.video_commit_seconds,
                    )
        return self._video_stage

    def frame_side(self, encoder: Encoder) -> int | None:
        """The shortest side a video's frames are decoded to: with text reading on, enough to
        read by (a keyframe cannot be decoded again later, unlike a photo's file)."""
        side = encoder.input_size
        return max(side, OCR_SIDE) if side is not None and self.reader else side

    def _detailed(self, data: bytes, path: str) -> Any:
        """An image decoded again for reading its text: the shorter side at OCR_SIDE or more."""
        return decode_image(
            data, path=path, max_pixels=self.settings.max_image_pixels, min_side=OCR_SIDE
        ).image

    def read_text(self, image: Any, detail: Callable[[], Any] | None = None) -> tuple[ReadWord, ...]:
        """Reader thread: the text in an image (an OCR failure costs the words, not the image).
        `detail` decodes the image again with more pixels, asked only when text is seen."""
        t = time.perf_counter()
        try:
            return self.reader.read(image, detail) if self.reader else ()
        except ModelUnavailableError:
            raise
        except Exception:
            log.warning("could not read text in an image", exc_info=True)
            return ()
        finally:
            self._state.stage("read_text", t)

    def prepare(
        self, encoder: Encoder, entry: FoundFile, root: str, resume_at: float | None = None
    ) -> Prepared | tuple[ItemFacts, str]:
        """Runs in reader threads: read, hash, decode and prepare one file for the model
        (`resume_at`: a film an interrupted run left part-way goes on from there)."""
        t = time.perf_counter()
        digest = None
        try:
            if entry.kind == AUDIO:
                return self._prepare_audio(encoder, entry, root)
            if entry.kind == VIDEO:
                facts, video = self.videos.prepare(encoder, entry, root, start=resume_at or 0.0)
                return Prepared(facts, video=video)
            data = read_bytes(entry.path)
            digest = file_hash(data)
            if entry.kind == IMAGE and not encoder.images:
                raise MediaError(
                    entry.path,
                    f"the index's model ({encoder.spec.name}) has no image encoder; index images "
                    "into an index built with one (e.g. --model offline-default --index NEW_FOLDER)",
                )
            if entry.kind == IMAGE:
                decoded = decode_image(
                    data,
                    path=entry.path,
                    max_pixels=self.settings.max_image_pixels,
                    # The model's size, also when reading text: the few photos a glance finds
                    # text in are decoded again with more pixels (`_detailed`).
                    min_side=encoder.input_size,
                )
                read = (
                    self.read_text(decoded.image, lambda: self._detailed(data, entry.path))
                    if self.reader else ()
                )
                facts = ItemFacts(
                    entry.path, root, IMAGE, entry.size, entry.mtime_ns, digest,
                    width=decoded.width, height=decoded.height, taken_at=decoded.taken_at,
                    words=name_words(entry.path), read_words=read,
                )
                seen = " ".join(w.text for w in read)
                return Prepared(
                    facts, image=encoder.prepare_image(decoded.image), chunks=[seen] if seen else []
                )
            text = decode_text(data, path=entry.path, max_bytes=self.settings.max_text_bytes)
            facts = ItemFacts(
                entry.path, root, TEXT, entry.size, entry.mtime_ns, digest,
                words=name_words(entry.path), content=text[:_MAX_FTS_CHARS],
            )
            max_words = encoder.max_text_words()
            # Bound the work per document: a 19 MB log would be ~22,000 chunks (most of an hour).
            budget = first_words(text, self.settings.max_text_chunks * max_words)
            chunks = chunk_text(budget, max_words)[: self.settings.max_text_chunks]
            return Prepared(facts, chunks=chunks)
        except MediaError as exc:
            facts = ItemFacts(entry.path, root, entry.kind, entry.size, entry.mtime_ns, digest)
            return facts, exc.reason
        except Exception as exc:  # a decoder bug must not stop the run; record it instead
            log.exception("unexpected error decoding %s", entry.path)
            facts = ItemFacts(entry.path, root, entry.kind, entry.size, entry.mtime_ns, digest)
            return facts, f"unexpected error: {type(exc).__name__}: {exc}"
        finally:
            self._state.stage("decode", t)

    def _prepare_audio(self, encoder: Encoder, entry: FoundFile, root: str) -> Prepared:
        """Reader thread: hash (streamed: recordings can be gigabytes), probe, and decode a short
        recording whole; a long one is streamed through the model later, block by block."""
        audio = encoder.audio
        if audio is None:
            raise MediaError(
                entry.path,
                f"the index's model ({encoder.spec.name}) has no audio encoder; index sound "
                "into an index built with one (e.g. --model offline-default --index NEW_FOLDER)",
            )
        digest = file_hash_streamed(entry.path)
        info = probe_audio(entry.path)
        facts = ItemFacts(
            entry.path, root, AUDIO, entry.size, entry.mtime_ns, digest,
            words=name_words(entry.path), duration=info.duration,
            sample_rate=info.sample_rate, channels=info.channels, codec=info.codec,
        )
        waveform = None
        if info.duration <= _DECODE_WHOLE_SECONDS:
            blocks = read_audio(entry.path, rate=audio.sample_rate)
            waveform = np.concatenate(list(blocks) or [np.zeros(0, np.float32)])
            if len(waveform) == 0:
                raise MediaError(entry.path, "no audio samples could be decoded")
        return Prepared(facts, audio=waveform, is_audio=True)


def first_words(text: str, limit: int) -> str:
    """`text` up to its `limit`-th word (the whole text when it is shorter)."""
    for count, match in enumerate(_WORD.finditer(text), 1):
        if count == limit:
            return text[: match.end()]
    return text
