"""The model side of an indexing run: the files the reader threads decoded are encoded on this
thread, a batch at a time (images with their regions, document chunks, recordings, videos),
and each batch is handed to a `Writer`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.config import Settings
from mmsearch.encoders.base import SEMANTIC, AudioEmbedding, Encoder
from mmsearch.encoders.ocr import READ_TEXT
from mmsearch.errors import MediaError
from mmsearch.ingest_decode import Decoder, Prepared
from mmsearch.ingest_plan import Job
from mmsearch.ingest_run import RunState, ordered_map
from mmsearch.ingest_write import Encoded, Writer
from mmsearch.media.audio import read_audio
from mmsearch.media.text import number_words
from mmsearch.results import Progress
from mmsearch.store.catalog_items import ItemFacts

if TYPE_CHECKING:
    from mmsearch.encoders.video import VideoEmbedding
    from mmsearch.ingest_video import EmbeddedVideo


class EncodeStage:
    """Decode (in reader threads), encode and write files with one run's model."""

    def __init__(self, settings: Settings, state: RunState, decoder: Decoder, writer: Writer) -> None:
        self.settings = settings
        self._state = state
        self.decoder = decoder
        self.writer = writer

    def run(self, encoder: Encoder, jobs: list[Job], pool: ThreadPoolExecutor) -> None:
        """Decode (in `pool`), encode and write `jobs`, a batch of files at a time. A Ray worker
        runs this too, with a writer that sends its records to the driver."""
        batch_size = self.settings.batch_size
        total = len(jobs)
        images: list[Prepared] = []
        texts: list[Prepared] = []
        sounds: list[tuple[Prepared, AudioEmbedding]] = []
        replaced = {job.file.path for job in jobs if job.row is not None}

        def prepare(job: Job) -> Prepared | tuple[ItemFacts, str]:
            return self.decoder.prepare(encoder, job.file, job.root, job.resume_at)

        done = 0
        for result in ordered_map(pool, prepare, jobs, window=4 * batch_size):
            done += 1
            if isinstance(result, tuple):
                self.writer.fail(*result)
            elif result.video is not None and self.decoder.videos.in_parts(result.video):
                self._write_video_parts(encoder, result, replaced)
            elif result.video is not None:
                embedded = self._embed_video(encoder, result)
                if embedded is not None:
                    sounds.append((result, embedded))
            elif result.is_audio:
                embedded = self._embed_audio(encoder, result)
                if embedded is not None:
                    sounds.append((result, embedded))
            elif result.image is not None:
                images.append(result)
            else:
                texts.append(result)
            if len(sounds) >= batch_size:
                self._write_sounds(sounds, replaced)
                sounds = []
            if len(images) >= batch_size:
                self._write_images(encoder, images, replaced)
                images = []
            if sum(len(p.chunks) for p in texts) >= batch_size:
                self._write_texts(encoder, texts, replaced, (done, total))
                texts = []
            self._state.progress(Progress("encode", done, total, jobs[done - 1].file.path))
            if self._state.cancelled():
                break
        if images:
            self._write_images(encoder, images, replaced)
        if texts:
            self._write_texts(encoder, texts, replaced, (done, total))
        if sounds:
            self._write_sounds(sounds, replaced)

    def _embed_audio(self, encoder: Encoder, prepared: Prepared) -> AudioEmbedding | None:
        """Run the audio model over one recording (streaming a long one); a file that fails
        half-way is recorded as skipped, like any unreadable file."""
        assert encoder.audio is not None
        path = prepared.facts.path
        t = time.perf_counter()
        try:
            if prepared.audio is not None:
                blocks: Iterable[np.ndarray] = [prepared.audio]
            else:
                blocks = read_audio(path, rate=encoder.audio.sample_rate)
            embedded = encoder.audio.embed_recording(blocks)
        except MediaError as exc:
            self.writer.fail(prepared.facts, exc.reason)
            return None
        finally:
            self._state.stage("encode", t)
        if not any(len(rows) for rows in embedded.vectors.values()):
            self.writer.fail(prepared.facts, "no audio the model could use")
            return None
        said = " ".join(text for _, _, text in embedded.transcript)
        prepared.facts = replace(
            prepared.facts,
            tags=tuple(embedded.tags),
            transcript=tuple(embedded.transcript),
            content=number_words(said),  # "7" in a transcript is found by "seven" too
        )
        prepared.audio = None  # the samples are no longer needed; free them before the commit
        return embedded

    def _embed_video(self, encoder: Encoder, prepared: Prepared) -> VideoEmbedding | None:
        """A video's keyframes and soundtrack through the model; None when skipped (recorded
        with the reason). Its facts gain tags and transcript; its decoded frames are freed."""
        assert prepared.video is not None
        t = time.perf_counter()
        try:
            outcome = self.decoder.videos.embed(
                encoder, prepared.facts, prepared.video, batch_size=self.settings.batch_size,
                read_text=self._video_text(),
            )
        finally:
            self._state.stage("encode", t)
        prepared.video = None  # frames and samples are no longer needed
        return self._video_outcome(prepared, outcome)

    def _write_video_parts(self, encoder: Encoder, prepared: Prepared, replaced: set[str]) -> None:
        """A long film through the model and into the catalog a part at a time, so a run
        killed part-way goes on from the last part committed; asked to stop, it stops between
        two parts (the film is then left part-way, and the next run goes on from there)."""
        video = prepared.video
        assert video is not None
        if video.start:
            self._state.report.resumed += 1
            self._state.report.notes.append(
                f"{prepared.facts.path}: went on from {video.start:.0f} s, where an interrupted "
                "run stopped (what came before was kept, not encoded again)"
            )
        parts = self.decoder.videos.embed_parts(
            encoder, prepared.facts, video, batch_size=self.settings.batch_size,
            read_text=self._video_text(),
        )
        while True:
            t = time.perf_counter()
            try:
                outcome = next(parts, None)
            finally:
                self._state.stage("encode", t)
            if outcome is None:
                return
            embedded = self._video_outcome(prepared, outcome)
            if embedded is not None:
                self._write_sounds([(prepared, embedded)], replaced)
            if self._state.cancelled():
                parts.close()
                return

    def _video_text(self) -> Callable[[Any], str] | None:
        """How the words in a keyframe are read, when the run reads text."""
        decoder = self.decoder
        if not decoder.reader:
            return None
        return lambda image: " ".join(w.text for w in decoder.read_text(image))

    def _video_outcome(self, prepared: Prepared, outcome: EmbeddedVideo) -> VideoEmbedding | None:
        """The embedding of a video (or of one part of it) with its facts set on `prepared`;
        None when it is skipped, which is recorded with the reason."""
        if outcome.skipped is not None:
            self.writer.fail(prepared.facts, outcome.skipped)
            return None
        assert outcome.embedding is not None
        for stage, seconds in outcome.embedding.seconds.items():
            self._state.add_seconds(f"video_{stage}", seconds)
        self._state.report.notes.extend(
            f"{prepared.facts.path}: indexed what could be read; {note}" for note in outcome.notes
        )
        prepared.facts = outcome.facts
        return outcome.embedding

    def _write_sounds(self, batch: list[tuple[Prepared, AudioEmbedding]], replaced: set[str]) -> None:
        encoded = Encoded(
            [p.facts for p, _ in batch],
            [e.vectors for _, e in batch],
            [e.spans for _, e in batch],
            [e.sources for _, e in batch],
            frame_regions=[getattr(e, "frame_regions", None) for _, e in batch],
        )
        self.writer.commit(encoded, replaced)

    def _write_images(self, encoder: Encoder, batch: list[Prepared], replaced: set[str]) -> None:
        """Embed and commit images with their region codes (for the reranker); text read in one
        joins its `semantic` vectors as a chunk of its own (source "read-text"), so a query for
        the words finds the image."""
        t = time.perf_counter()
        vectors, regions = encoder.embed_images_with_regions(
            [p.image for p in batch if p.image is not None]
        )
        texts = [p.chunks[0] for p in batch if p.chunks]
        read = iter(encoder.embed_texts(texts) if texts and SEMANTIC in vectors else ())
        self._state.stage("encode", t)
        per_item, sources = [], []
        for i, prepared in enumerate(batch):
            rows = {space: rows[i : i + 1] for space, rows in vectors.items()}
            made_by: dict[str, list[str | None]] = {}
            if prepared.chunks and SEMANTIC in rows:
                rows[SEMANTIC] = np.vstack([rows[SEMANTIC], next(read)[None, :]])
                made_by[SEMANTIC] = [None, READ_TEXT]
            per_item.append(rows)
            sources.append(made_by)
        encoded = Encoded([p.facts for p in batch], per_item, sources=sources, regions=regions)
        self.writer.commit(encoded, replaced)

    def _write_texts(
        self,
        encoder: Encoder,
        batch: list[Prepared],
        replaced: set[str],
        files: tuple[int, int],
    ) -> None:
        t = time.perf_counter()
        chunks = [c for p in batch for c in p.chunks]
        step = self.settings.batch_size
        parts = []
        for start in range(0, len(chunks), step):
            parts.append(encoder.embed_texts(chunks[start : start + step]))
            if len(chunks) > step:  # a large document: show progress inside it
                done = min(start + step, len(chunks))
                self._state.progress(
                    Progress("encode", *files, batch[-1].facts.path, part_done=done, part_total=len(chunks))
                )
        rows = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        self._state.stage("encode", t)
        per_item, start = [], 0
        for p in batch:
            per_item.append({SEMANTIC: rows[start : start + len(p.chunks)]})
            start += len(p.chunks)
        self.writer.commit(Encoded([p.facts for p in batch], per_item), replaced)
