"""Indexing runs: scan -> diff against the catalog -> hash -> decode (threads) -> encode -> write.

Each batch of encoded files is committed to the catalog in one transaction with its vectors,
so a run killed at any point resumes where it stopped and re-encodes nothing it committed.
Reader threads decode and prepare the next files while the model encodes the current batch.
"""

from __future__ import annotations

import logging
import os
import shlex
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from mmsearch.config import Settings
from mmsearch.encoders.base import SEMANTIC, AudioEmbedding, Encoder, Span
from mmsearch.encoders.ocr import READ_SIDE as OCR_SIDE
from mmsearch.encoders.ocr import READ_TEXT, ReadWord, TextReader
from mmsearch.encoders.regions import RegionCodes
from mmsearch.errors import IndexCancelled, MediaError, ModelUnavailableError
from mmsearch.media import (
    AUDIO,
    IMAGE,
    TEXT,
    VIDEO,
    FoundFile,
    Unreadable,
    chunk_text,
    decode_image,
    decode_text,
    discover,
    name_words,
)
from mmsearch.media.audio import probe_audio, read_audio
from mmsearch.media.contents import file_hash, file_hash_streamed, read_bytes
from mmsearch.media.ignore import Ignore
from mmsearch.media.paths import canonical_path, is_within
from mmsearch.media.text import WORD, number_words
from mmsearch.results import IndexReport, Progress
from mmsearch.store.catalog import Catalog
from mmsearch.store.catalog_items import ItemFacts, ItemRow
from mmsearch.store.spaces import SpaceSet

if TYPE_CHECKING:
    from mmsearch.encoders.video import VideoEmbedding
    from mmsearch.ingest_video import PreparedVideo, VideoStage

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]


class EncodeRunner(Protocol):
    """Runs the decode + encode stages elsewhere (`ingest_ray.RayRunner`): it hands each batch
    back through `Ingest._commit` / `Ingest._fail`, so commits are those of a local run."""

    def encode(self, ingest: Ingest, jobs: list[_Job]) -> None: ...


UNKNOWN_KIND = "unknown"
_MAX_FTS_CHARS = 1_000_000  # extracted text kept for keyword search, per document
_WORD = WORD  # as chunk_text counts: a character of Chinese, Japanese, Thai is a word
_DECODE_WHOLE_SECONDS = 120.0
"""Recordings up to this long are decoded whole in a reader thread (overlapping the model);
longer ones stream through the model in blocks, so an hour never sits in memory."""

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Prepared:
    """A decoded file, ready for the model."""

    facts: ItemFacts
    image: np.ndarray | None = None
    chunks: list[str] = field(default_factory=list)
    audio: np.ndarray | None = None
    """A short recording decoded whole (at the audio model's rate); long ones stream later."""
    is_audio: bool = False
    video: PreparedVideo | None = None
    """A video's facts and, when short, its keyframes decoded already (see ingest_video)."""


@dataclass(frozen=True)
class _Job:
    """A file to hash and maybe encode: where it was found, and the catalog's row for its path."""

    file: FoundFile
    root: str
    row: ItemRow | None


@dataclass
class _Plan:
    to_encode: list[_Job] = field(default_factory=list)
    missing: dict[str, ItemRow] = field(default_factory=dict)
    """Known items of the scanned roots whose files are gone."""
    offline: dict[str, ItemRow] = field(default_factory=dict)
    """Items of offline roots: kept; their content found at new paths is a move only when all
    of a root's items were found (the folder was renamed), else those files are copies."""
    offline_root: dict[str, str] = field(default_factory=dict)
    """The offline root of each item in `offline`."""


def ordered_map(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], window: int
) -> Iterator[R]:
    """`pool.map` that keeps at most `window` tasks in flight (bounded memory), in order."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def offline_note(root: str, items: int, why: str) -> str:
    return (
        f"{root} {why}: its {items} item(s) are kept (still searchable) until it comes back. "
        f"If it is gone for good, `mmsearch remove {shlex.quote(root)}` forgets it."
    )


class Ingest:
    """One indexing run over some roots of one index."""

    def __init__(
        self,
        catalog: Catalog,
        spaces: SpaceSet,
        encoder: Callable[[], Encoder],
        settings: Settings,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        runner: EncodeRunner | None = None,
    ) -> None:
        self.catalog = catalog
        self.spaces = spaces
        self._encoder_factory = encoder
        self.settings = settings
        self._progress = progress or (lambda p: None)
        self._cancel = cancel
        self._runner = runner
        self._reader = TextReader() if settings.read_text_in_images else None
        self.report = IndexReport()
        self._stage_lock = threading.Lock()  # reader threads add their decode time too
        self._video_stage: VideoStage | None = None

    @property
    def _videos(self) -> VideoStage:
        """The video stage (PyAV and the frame chooser load only for a run that meets a video)."""
        if self._video_stage is None:
            from mmsearch.ingest_video import VideoStage
            from mmsearch.media.video import FrameChoice

            choice = FrameChoice(
                every=self.settings.video_keyframe_seconds, scene=self.settings.video_scene_change
            )
            with self._stage_lock:
                if self._video_stage is None:
                    self._video_stage = VideoStage(choice, self._frame_side, _DECODE_WHOLE_SECONDS)
        return self._video_stage

    def _frame_side(self, encoder: Encoder) -> int | None:
        """The shortest side a video's frames are decoded to: with text reading on, enough to
        read by (a keyframe cannot be decoded again later, unlike a photo's file)."""
        side = encoder.input_size
        return max(side, OCR_SIDE) if side is not None and self._reader else side

    def _detailed(self, data: bytes, path: str) -> Any:
        """An image decoded again for reading its text: the shorter side at OCR_SIDE or more."""
        return decode_image(
            data, path=path, max_pixels=self.settings.max_image_pixels, min_side=OCR_SIDE
        ).image

    def _read_text(self, image: Any, detail: Callable[[], Any] | None = None) -> tuple[ReadWord, ...]:
        """Reader thread: the text in an image (an OCR failure costs the words, not the image).
        `detail` decodes the image again with more pixels, asked only when text is seen."""
        t = time.perf_counter()
        try:
            return self._reader.read(image, detail) if self._reader else ()
        except ModelUnavailableError:
            raise
        except Exception:
            log.warning("could not read text in an image", exc_info=True)
            return ()
        finally:
            self._stage("read_text", t)

    def _stop_if_cancelled(self) -> None:
        """Raise `IndexCancelled` once asked to stop. Called between files, after pending
        batches were committed, so nothing encoded is thrown away and nothing half-seen (a scan
        cut short) is taken for deleted."""
        if self._cancel is not None and self._cancel.is_set():
            raise IndexCancelled(
                f"Indexing was cancelled after {self.report.encoded} files were encoded; they "
                "are kept and searchable. Index again to go on where it stopped."
            )

    def _stage(self, name: str, since: float) -> None:
        elapsed = time.perf_counter() - since
        with self._stage_lock:
            self.report.stage_seconds[name] = self.report.stage_seconds.get(name, 0.0) + elapsed

    def run(self, roots: list[str], *, verify: bool = False) -> IndexReport:
        """Bring `roots` up to date; with `verify`, re-hash unchanged-looking files too (content
        changed behind the same size and mtime is otherwise invisible)."""
        started = time.perf_counter()
        self.spaces.clean_temp_files()
        self.spaces.load()
        self.catalog.add_roots(roots)
        t = time.perf_counter()
        present = [root for root in roots if os.path.exists(root)]
        for root in roots:
            if root not in present:
                self._mark_offline(root, "is missing (an unmounted drive, or renamed?)")
        found, unreadable, online = self._scan(present)
        for root in present:
            if root not in online:
                self._mark_offline(root, "is empty although it held indexed files (an empty mount point?)")
        for root in online:
            self.catalog.set_root_missing(root, False)
        plan = self._diff(online, found, unreadable, verify)
        self._stage("scan", t)
        with ThreadPoolExecutor(self.settings.workers(), thread_name_prefix="mmsearch-read") as pool:
            t = time.perf_counter()
            self._hash_candidates(plan, pool)
            self._stage("hash", t)
            self._remove_missing(plan)
            self._record_unreadable(unreadable, online)
            if plan.to_encode and self._runner is not None:
                self._runner.encode(self, plan.to_encode)
                self._stop_if_cancelled()
            elif plan.to_encode:
                self._encode_all(plan, pool)
        self._forget_emptied_offline_roots()
        t = time.perf_counter()
        self._progress(Progress("save", 0, 1))
        self.spaces.save()
        self._progress(Progress("save", 1, 1))
        self._stage("save", t)
        self.report.seconds = time.perf_counter() - started
        return self.report

    # -- roots that are not there -------------------------------------------------------------

    def _mark_offline(self, root: str, why: str) -> None:
        self.catalog.set_root_missing(root, True)
        self.report.offline.append(root)
        self.report.notes.append(offline_note(root, self.catalog.count_under(root), why))

    def _offline_roots(self) -> list[str]:
        """Every known root that is offline now: found so by this run, or not there at all. (A
        root marked offline earlier that exists again is not: its files may be back, and taking
        them for moves would steal them from it.)"""
        return [
            path
            for path in self.catalog.roots()
            if path in self.report.offline or not os.path.exists(path)
        ]

    def _forget_emptied_offline_roots(self) -> None:
        """An offline root whose every item turned up elsewhere was moved: forget the old name."""
        for root in self._offline_roots():
            if self.report.moved and self.catalog.count_under(root) == 0:
                self.catalog.remove_root(root)
                self.report.notes.append(f"{root} was moved or renamed; its files were found elsewhere.")

    # -- scan and diff ------------------------------------------------------------------------

    def _scan(
        self, roots: list[str]
    ) -> tuple[dict[str, tuple[FoundFile, str]], list[Unreadable], list[str]]:
        """Walk the roots; returns what was found, what could not be read, and the roots that
        are online (an existing root that turned up nothing while the index holds files from it
        is taken for an empty mount point, not for everything deleted)."""
        found: dict[str, tuple[FoundFile, str]] = {}
        unreadable: list[Unreadable] = []
        online = []
        ignore = Ignore(self.catalog.exclusions())
        for root in roots:
            seen = 0
            try:
                entries = discover([root], ignore)
                for entry in entries:
                    self._stop_if_cancelled()
                    seen += 1
                    if isinstance(entry, Unreadable):
                        unreadable.append(entry)
                    else:
                        found.setdefault(entry.path, (entry, root))
                        if len(found) % 1000 == 0:
                            self._progress(Progress("scan", len(found), 0, entry.path))
            except MediaError:  # vanished between the check and the walk
                self._mark_offline(root, "vanished during the scan")
                continue
            if seen == 0 and self.catalog.count_under(root) > 0:
                continue
            online.append(root)
        self.report.scanned = len(found)
        self._progress(Progress("scan", len(found), len(found)))
        return found, unreadable, online

    def _diff(
        self,
        roots: list[str],
        found: dict[str, tuple[FoundFile, str]],
        unreadable: list[Unreadable],
        verify: bool,
    ) -> _Plan:
        known: dict[str, ItemRow] = {}
        for root in roots:
            known.update(self.catalog.items_under(root))
        plan = _Plan()
        for path, (entry, root) in found.items():
            row = known.get(path)
            same_stat = row is not None and (row.size, row.mtime_ns) == (entry.size, entry.mtime_ns)
            if same_stat and not verify:
                self.report.unchanged += 1
            else:
                plan.to_encode.append(_Job(entry, root, row))
        skipped = {u.path for u in unreadable}
        plan.missing = {p: r for p, r in known.items() if p not in found and p not in skipped}
        for root in self._offline_roots():
            items = self.catalog.items_under(root)
            plan.offline.update(items)
            plan.offline_root.update(dict.fromkeys(items, root))
        return plan

    def _hash_candidates(self, plan: _Plan, pool: ThreadPoolExecutor) -> None:
        """Recognise touched and moved files by content so they are not encoded again."""
        vanished = [*plan.missing.values(), *plan.offline.values()]
        moved_from: dict[tuple[str, str], ItemRow] = {
            (row.hash, row.kind): row for row in vanished if row.hash and row.status == "ok"
        }
        if not plan.to_encode:
            return

        def hash_one(job: _Job) -> str | None:
            try:
                return file_hash_streamed(job.file.path)
            except MediaError:
                return None  # the decode stage records the reason

        # Only a file that replaces a known one can be a touch, and only while some known file
        # vanished can a new path be a move: a fresh index hashes nothing here.
        worth = [job for job in plan.to_encode if job.row is not None or moved_from]
        digests = dict(zip((job.file.path for job in worth), ordered_map(pool, hash_one, worth, 64)))
        still: list[_Job] = []
        touches: list[tuple[int, int, int]] = []
        moves: list[tuple[int, str, str, int, int, str]] = []
        from_offline: list[tuple[ItemRow, _Job]] = []
        total = len(plan.to_encode)
        for done, job in enumerate(plan.to_encode, 1):
            self._stop_if_cancelled()
            entry, row = job.file, job.row
            if done % 200 == 0 or done == total:
                self._progress(Progress("hash", done, total, entry.path))
            digest = digests.get(entry.path)
            if digest is None:
                still.append(job)
                continue
            if row is not None and row.hash == digest and row.status == "ok":
                if (row.size, row.mtime_ns) != (entry.size, entry.mtime_ns):
                    touches.append((row.id, entry.size, entry.mtime_ns))
                self.report.unchanged += 1
                continue
            moved = moved_from.pop((digest, entry.kind), None)
            if moved is not None and row is None and moved.path in plan.offline_root:
                from_offline.append((moved, job))  # a move or a copy: decided below, per root
                continue
            if moved is not None and row is None:
                words = name_words(entry.path)
                moves.append((moved.id, entry.path, job.root, entry.size, entry.mtime_ns, words))
                plan.missing.pop(moved.path, None)
                plan.offline.pop(moved.path, None)
                self.report.moved += 1
                continue
            still.append(job)
        still += self._offline_moves(plan, from_offline, moves)
        # Re-stamping 20,000 touched files one transaction each took longer than indexing them.
        self.catalog.touch_many(touches)
        self.catalog.move_many(moves)
        plan.to_encode = still

    def _offline_moves(
        self,
        plan: _Plan,
        found: list[tuple[ItemRow, _Job]],
        moves: list[tuple[int, str, str, int, int, str]],
    ) -> list[_Job]:
        """Sort the files whose content matches an item of an offline root into moves (added to
        `moves`) and copies (returned, to be indexed as new items).

        An offline root may only be unplugged: a file of it that turns up elsewhere is then a
        copy, and taking it for a move would take the item from the folder that comes back. A
        root every one of whose items turned up elsewhere was renamed or moved as a whole: those
        are moves (no re-encoding), and the old root is forgotten.
        """
        matched: dict[str, int] = {}
        for source, _ in found:
            root = plan.offline_root[source.path]
            matched[root] = matched.get(root, 0) + 1
        movable = {
            root for root, n in matched.items()
            if n == sum(1 for r in plan.offline.values()
                        if plan.offline_root[r.path] == root and r.hash and r.status == "ok")
        }
        copies: list[_Job] = []
        for source, job in found:
            if plan.offline_root[source.path] not in movable:
                copies.append(job)
                continue
            entry = job.file
            moves.append((source.id, entry.path, job.root, entry.size, entry.mtime_ns, name_words(entry.path)))
            plan.offline.pop(source.path, None)
            self.report.moved += 1
        return copies

    def _remove_missing(self, plan: _Plan) -> None:
        if not plan.missing:
            return
        ids = [row.id for row in plan.missing.values()]
        self.spaces.remove(self.catalog.delete_items(ids))
        self.report.removed += len(ids)

    def _record_unreadable(self, unreadable: list[Unreadable], roots: list[str]) -> None:
        for entry in unreadable:
            root = next((r for r in roots if is_within(entry.path, r)), roots[0])
            facts = ItemFacts(entry.path, root, UNKNOWN_KIND, 0, 0, None)
            self.spaces.remove(self.catalog.write_error(facts, entry.reason))
            self.report.failed += 1
            self.report.failures.append((entry.path, entry.reason))

    # -- decode, encode, write ----------------------------------------------------------------

    def _encode_all(self, plan: _Plan, pool: ThreadPoolExecutor) -> None:
        t = time.perf_counter()
        encoder = self._encoder_factory()
        self.spaces.ensure(encoder.all_spaces())
        self._stage("load_model", t)
        self._encode_jobs(encoder, plan.to_encode, pool)
        self._stop_if_cancelled()

    def _encode_jobs(self, encoder: Encoder, jobs: list[_Job], pool: ThreadPoolExecutor) -> None:
        """Decode (in `pool`), encode and commit `jobs`, a batch of files at a time. A Ray worker
        runs this too, with `_commit` and `_fail` sending their records to the driver."""
        batch_size = self.settings.batch_size
        total = len(jobs)
        images: list[_Prepared] = []
        texts: list[_Prepared] = []
        sounds: list[tuple[_Prepared, AudioEmbedding]] = []
        replaced = {job.file.path for job in jobs if job.row is not None}

        def prepare(job: _Job) -> _Prepared | tuple[ItemFacts, str]:
            return self._prepare(encoder, job.file, job.root)

        done = 0
        for result in ordered_map(pool, prepare, jobs, window=4 * batch_size):
            done += 1
            if isinstance(result, tuple):
                self._fail(*result)
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
            self._progress(Progress("encode", done, total, jobs[done - 1].file.path))
            if self._cancel is not None and self._cancel.is_set():
                break
        if images:
            self._write_images(encoder, images, replaced)
        if texts:
            self._write_texts(encoder, texts, replaced, (done, total))
        if sounds:
            self._write_sounds(sounds, replaced)

    def _prepare(
        self, encoder: Encoder, entry: FoundFile, root: str
    ) -> _Prepared | tuple[ItemFacts, str]:
        """Runs in reader threads: read, hash, decode and prepare one file for the model."""
        t = time.perf_counter()
        digest = None
        try:
            if entry.kind == AUDIO:
                return self._prepare_audio(encoder, entry, root)
            if entry.kind == VIDEO:
                facts, video = self._videos.prepare(encoder, entry, root)
                return _Prepared(facts, video=video)
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
                    self._read_text(decoded.image, lambda: self._detailed(data, entry.path))
                    if self._reader else ()
                )
                facts = ItemFacts(
                    entry.path, root, IMAGE, entry.size, entry.mtime_ns, digest,
                    width=decoded.width, height=decoded.height, taken_at=decoded.taken_at,
                    words=name_words(entry.path), read_words=read,
                )
                seen = " ".join(w.text for w in read)
                return _Prepared(
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
            return _Prepared(facts, chunks=chunks)
        except MediaError as exc:
            facts = ItemFacts(entry.path, root, entry.kind, entry.size, entry.mtime_ns, digest)
            return facts, exc.reason
        except Exception as exc:  # a decoder bug must not stop the run; record it instead
            log.exception("unexpected error decoding %s", entry.path)
            facts = ItemFacts(entry.path, root, entry.kind, entry.size, entry.mtime_ns, digest)
            return facts, f"unexpected error: {type(exc).__name__}: {exc}"
        finally:
            self._stage("decode", t)

    # -- audio --------------------------------------------------------------------------------

    def _prepare_audio(self, encoder: Encoder, entry: FoundFile, root: str) -> _Prepared:
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
        return _Prepared(facts, audio=waveform, is_audio=True)

    def _embed_audio(self, encoder: Encoder, prepared: _Prepared) -> AudioEmbedding | None:
        """Main thread: run the audio model over one recording (streaming a long one); a file
        that fails half-way is recorded as skipped, like any unreadable file."""
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
            self._fail(prepared.facts, exc.reason)
            return None
        finally:
            self._stage("encode", t)
        if not any(len(rows) for rows in embedded.vectors.values()):
            self._fail(prepared.facts, "no audio the model could use")
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

    def _embed_video(self, encoder: Encoder, prepared: _Prepared) -> VideoEmbedding | None:
        """A video's keyframes and soundtrack through the model; None when skipped (recorded
        with the reason). Its facts gain tags and transcript; its decoded frames are freed."""
        assert prepared.video is not None
        t = time.perf_counter()
        try:
            outcome = self._videos.embed(
                encoder, prepared.facts, prepared.video, batch_size=self.settings.batch_size,
                read_text=(lambda image: " ".join(w.text for w in self._read_text(image)))
                if self._reader else None,
            )
        finally:
            self._stage("encode", t)
        prepared.video = None  # frames and samples are no longer needed
        if outcome.skipped is not None:
            self._fail(prepared.facts, outcome.skipped)
            return None
        assert outcome.embedding is not None
        for stage, seconds in outcome.embedding.seconds.items():
            key = f"video_{stage}"
            self.report.stage_seconds[key] = self.report.stage_seconds.get(key, 0.0) + seconds
        self.report.notes.extend(
            f"{prepared.facts.path}: indexed what could be read; {note}" for note in outcome.notes
        )
        prepared.facts = outcome.facts
        return outcome.embedding

    def _write_sounds(
        self, batch: list[tuple[_Prepared, AudioEmbedding]], replaced: set[str]
    ) -> None:
        self._commit(
            [p for p, _ in batch],
            [e.vectors for _, e in batch],
            replaced,
            [e.spans for _, e in batch],
            [e.sources for _, e in batch],
            frame_regions=[getattr(e, "frame_regions", None) for _, e in batch],
        )

    def _write_images(self, encoder: Encoder, batch: list[_Prepared], replaced: set[str]) -> None:
        """Embed and commit images with their region codes (for the reranker); text read in one
        joins its `semantic` vectors as a chunk of its own (source "read-text"), so a query for
        the words finds the image."""
        t = time.perf_counter()
        vectors, regions = encoder.embed_images_with_regions(
            [p.image for p in batch if p.image is not None]
        )
        texts = [p.chunks[0] for p in batch if p.chunks]
        read = iter(encoder.embed_texts(texts) if texts and SEMANTIC in vectors else ())
        self._stage("encode", t)
        per_item, sources = [], []
        for i, prepared in enumerate(batch):
            rows = {space: rows[i : i + 1] for space, rows in vectors.items()}
            made_by: dict[str, list[str | None]] = {}
            if prepared.chunks and SEMANTIC in rows:
                rows[SEMANTIC] = np.vstack([rows[SEMANTIC], next(read)[None, :]])
                made_by[SEMANTIC] = [None, READ_TEXT]
            per_item.append(rows)
            sources.append(made_by)
        self._commit(batch, per_item, replaced, per_item_sources=sources, regions=regions)

    def _write_texts(
        self,
        encoder: Encoder,
        batch: list[_Prepared],
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
                self._progress(
                    Progress("encode", *files, batch[-1].facts.path, part_done=done, part_total=len(chunks))
                )
        rows = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        self._stage("encode", t)
        per_item, start = [], 0
        for p in batch:
            per_item.append({SEMANTIC: rows[start : start + len(p.chunks)]})
            start += len(p.chunks)
        self._commit(batch, per_item, replaced)

    def _fail(self, facts: ItemFacts, reason: str) -> None:
        """Record a file that could not be indexed, with the reason (its old vectors go)."""
        self.spaces.remove(self.catalog.write_error(facts, reason))
        self.report.failed += 1
        self.report.failures.append((facts.path, reason))

    def _commit(
        self,
        batch: list[_Prepared],
        per_item: list[dict[str, np.ndarray]],
        replaced: set[str],
        per_item_spans: list[dict[str, list[Span]]] | None = None,
        per_item_sources: list[dict[str, list[str | None]]] | None = None,
        regions: list[RegionCodes | None] | None = None,
        frame_regions: list[list[RegionCodes | None] | None] | None = None,
    ) -> None:
        t = time.perf_counter()
        old_ids: list[int] = []
        spans = per_item_spans or [{} for _ in batch]
        sources = per_item_sources or [{} for _ in batch]
        with self.catalog.write():
            for n, (prepared, vectors, times, made_by) in enumerate(zip(batch, per_item, spans, sources)):
                item_id, old, _ = self.catalog.write_item(prepared.facts, vectors, times, made_by)
                if regions is not None:  # images: what each region shows, for the reranker
                    self.catalog.write_regions(item_id, regions[n])
                if frame_regions is not None and frame_regions[n] is not None:  # videos: per keyframe
                    self.catalog.write_frame_regions(item_id, frame_regions[n])
                old_ids += old
                if prepared.facts.path in replaced:
                    self.report.updated += 1
                else:
                    self.report.added += 1
                self.report.encoded += 1
        # Only after the commit: the in-memory indexes never hold what the catalog does not.
        # The new vectors come back from the catalog (ids above those already held).
        self.spaces.remove(old_ids)
        self.spaces.refresh()
        self._stage("write", t)


def first_words(text: str, limit: int) -> str:
    """`text` up to its `limit`-th word (the whole text when it is shorter)."""
    for count, match in enumerate(_WORD.finditer(text), 1):
        if count == limit:
            return text[: match.end()]
    return text


def normalise_roots(folders: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Canonical root paths (see `canonical_path`), each once, in the order given."""
    return list(dict.fromkeys(canonical_path(folder) for folder in folders))
