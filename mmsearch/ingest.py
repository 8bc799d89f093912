"""Indexing runs: scan -> diff against the catalog -> hash -> decode (threads) -> encode -> write.

Each batch of encoded files is committed to the catalog in one transaction with its vectors,
so a run killed at any point resumes where it stopped and re-encodes nothing it committed.
Reader threads decode and prepare the next files while the model encodes the current batch.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from mmsearch.config import Settings
from mmsearch.encoders.base import SEMANTIC, Encoder
from mmsearch.errors import MediaError
from mmsearch.media import (
    IMAGE,
    TEXT,
    FoundFile,
    Unreadable,
    chunk_text,
    decode_image,
    decode_text,
    discover,
    name_words,
)
from mmsearch.results import IndexReport, Progress
from mmsearch.store.catalog import Catalog, ItemFacts, ItemRow
from mmsearch.store.spaces import SpaceSet

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]
UNKNOWN_KIND = "unknown"
_MAX_FTS_CHARS = 200_000  # extracted text kept for keyword search, per document

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Prepared:
    """A decoded file, ready for the model."""

    facts: ItemFacts
    image: np.ndarray | None = None
    chunks: list[str] = field(default_factory=list)


@dataclass
class _Plan:
    to_encode: list[tuple[FoundFile, str, bool]] = field(default_factory=list)
    """(file, root, replaces an existing item)"""
    missing: dict[str, ItemRow] = field(default_factory=dict)


def file_hash(data: bytes) -> str:
    """Content hash used to recognise moved, renamed and unchanged files."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise MediaError(path, f"cannot read: {exc.strerror or exc}") from exc


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


class Ingest:
    """One indexing run over some roots of one index."""

    def __init__(
        self,
        catalog: Catalog,
        spaces: SpaceSet,
        encoder: Callable[[], Encoder],
        settings: Settings,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.catalog = catalog
        self.spaces = spaces
        self._encoder_factory = encoder
        self.settings = settings
        self._progress = progress or (lambda p: None)
        self.report = IndexReport()
        self._stage_lock = threading.Lock()  # reader threads add their decode time too

    def _stage(self, name: str, since: float) -> None:
        elapsed = time.perf_counter() - since
        with self._stage_lock:
            self.report.stage_seconds[name] = self.report.stage_seconds.get(name, 0.0) + elapsed

    def run(self, roots: list[str]) -> IndexReport:
        started = time.perf_counter()
        self.spaces.load()
        self.catalog.add_roots(roots)
        t = time.perf_counter()
        found, unreadable = self._scan(roots)
        plan = self._diff(roots, found, unreadable)
        self._stage("scan", t)
        with ThreadPoolExecutor(self.settings.workers(), thread_name_prefix="mmsearch-read") as pool:
            t = time.perf_counter()
            self._hash_candidates(plan, pool)
            self._stage("hash", t)
            self._remove_missing(plan)
            self._record_unreadable(unreadable, roots)
            if plan.to_encode:
                self._encode_all(plan, pool)
        t = time.perf_counter()
        self._progress(Progress("save", 0, 1))
        self.spaces.save()
        self._progress(Progress("save", 1, 1))
        self._stage("save", t)
        self.report.seconds = time.perf_counter() - started
        return self.report

    # -- scan and diff ------------------------------------------------------------------------

    def _scan(self, roots: list[str]) -> tuple[dict[str, tuple[FoundFile, str]], list[Unreadable]]:
        found: dict[str, tuple[FoundFile, str]] = {}
        unreadable: list[Unreadable] = []
        for root in roots:
            for entry in discover([root]):
                if isinstance(entry, Unreadable):
                    unreadable.append(entry)
                else:
                    found.setdefault(entry.path, (entry, root))
                    if len(found) % 1000 == 0:
                        self._progress(Progress("scan", len(found), 0, entry.path))
        self.report.scanned = len(found)
        self._progress(Progress("scan", len(found), len(found)))
        return found, unreadable

    def _diff(
        self,
        roots: list[str],
        found: dict[str, tuple[FoundFile, str]],
        unreadable: list[Unreadable],
    ) -> _Plan:
        known: dict[str, ItemRow] = {}
        for root in roots:
            known.update(self.catalog.items_under(root))
        plan = _Plan()
        for path, (entry, root) in found.items():
            row = known.get(path)
            if row is not None and row.size == entry.size and row.mtime_ns == entry.mtime_ns:
                self.report.unchanged += 1
            else:
                plan.to_encode.append((entry, root, row is not None))
        skipped = {u.path for u in unreadable}
        plan.missing = {p: r for p, r in known.items() if p not in found and p not in skipped}
        return plan

    def _hash_candidates(self, plan: _Plan, pool: ThreadPoolExecutor) -> None:
        """Recognise touched and moved files by content so they are not encoded again."""
        missing_by_hash: dict[tuple[str, str], ItemRow] = {
            (row.hash, row.kind): row
            for row in plan.missing.values()
            if row.hash and row.status == "ok"
        }
        if not plan.to_encode:
            return

        def hash_one(job: tuple[FoundFile, str, bool]) -> str | None:
            try:
                return file_hash(_read(job[0].path))
            except MediaError:
                return None  # the decode stage records the reason

        # Only a file that replaces a known one can be a touch, and only while some known file
        # vanished can a new path be a move: a fresh index hashes nothing here.
        worth = [job for job in plan.to_encode if job[2] or missing_by_hash]
        digests = dict(zip((job[0].path for job in worth), ordered_map(pool, hash_one, worth, 64)))
        still: list[tuple[FoundFile, str, bool]] = []
        total = len(plan.to_encode)
        for done, job in enumerate(plan.to_encode, 1):
            entry, root, replaces = job
            digest = digests.get(entry.path)
            if digest is None:
                still.append(job)
                continue
            if done % 200 == 0 or done == total:
                self._progress(Progress("hash", done, total, entry.path))
            existing = self.catalog.item_by_path(entry.path) if replaces else None
            if existing and existing.hash == digest and existing.status == "ok":
                self.catalog.touch(existing.id, entry.size, entry.mtime_ns)
                self.report.unchanged += 1
                continue
            moved = missing_by_hash.pop((digest, entry.kind), None)
            if moved is not None and existing is None:
                self.catalog.move(moved.id, entry.path, root, entry.size, entry.mtime_ns)
                self.catalog.set_words(moved.id, name_words(entry.path))
                del plan.missing[moved.path]
                self.report.moved += 1
                continue
            still.append(job)
        plan.to_encode = still

    def _remove_missing(self, plan: _Plan) -> None:
        if not plan.missing:
            return
        ids = [row.id for row in plan.missing.values()]
        self.spaces.remove(self.catalog.delete_items(ids))
        self.report.removed += len(ids)

    def _record_unreadable(self, unreadable: list[Unreadable], roots: list[str]) -> None:
        for entry in unreadable:
            root = next((r for r in roots if entry.path.startswith(r)), roots[0])
            facts = ItemFacts(entry.path, root, UNKNOWN_KIND, 0, 0, None)
            self.spaces.remove(self.catalog.write_error(facts, entry.reason))
            self.report.failed += 1
            self.report.failures.append((entry.path, entry.reason))

    # -- decode, encode, write ----------------------------------------------------------------

    def _encode_all(self, plan: _Plan, pool: ThreadPoolExecutor) -> None:
        t = time.perf_counter()
        encoder = self._encoder_factory()
        self.spaces.ensure(dict(encoder.spaces))
        self._stage("load_model", t)
        batch_size = self.settings.batch_size
        total = len(plan.to_encode)
        images: list[_Prepared] = []
        texts: list[_Prepared] = []
        replaced = {job[0].path for job in plan.to_encode if job[2]}

        def prepare(job: tuple[FoundFile, str, bool]) -> _Prepared | tuple[ItemFacts, str]:
            return self._prepare(encoder, job[0], job[1])

        done = 0
        for result in ordered_map(pool, prepare, plan.to_encode, window=4 * batch_size):
            done += 1
            if isinstance(result, tuple):
                facts, reason = result
                self.spaces.remove(self.catalog.write_error(facts, reason))
                self.report.failed += 1
                self.report.failures.append((facts.path, reason))
            elif result.image is not None:
                images.append(result)
            else:
                texts.append(result)
            if len(images) >= batch_size:
                self._write(encoder.embed_images, images, replaced)
                images = []
            if sum(len(p.chunks) for p in texts) >= batch_size:
                self._write_texts(encoder, texts, replaced)
                texts = []
            self._progress(Progress("encode", done, total, plan.to_encode[done - 1][0].path))
        if images:
            self._write(encoder.embed_images, images, replaced)
        if texts:
            self._write_texts(encoder, texts, replaced)

    def _prepare(
        self, encoder: Encoder, entry: FoundFile, root: str
    ) -> _Prepared | tuple[ItemFacts, str]:
        """Runs in reader threads: read, hash, decode and prepare one file for the model."""
        t = time.perf_counter()
        digest = None
        try:
            data = _read(entry.path)
            digest = file_hash(data)
            if entry.kind == IMAGE:
                decoded = decode_image(
                    data,
                    path=entry.path,
                    max_pixels=self.settings.max_image_pixels,
                    min_side=encoder.input_size,
                )
                facts = ItemFacts(
                    entry.path, root, IMAGE, entry.size, entry.mtime_ns, digest,
                    width=decoded.width, height=decoded.height, taken_at=decoded.taken_at,
                    words=name_words(entry.path),
                )
                return _Prepared(facts, image=encoder.prepare_image(decoded.image))
            text = decode_text(data, path=entry.path, max_bytes=self.settings.max_text_bytes)
            facts = ItemFacts(
                entry.path, root, TEXT, entry.size, entry.mtime_ns, digest,
                words=name_words(entry.path), content=text[:_MAX_FTS_CHARS],
            )
            return _Prepared(facts, chunks=chunk_text(text, encoder.max_text_words()))
        except MediaError as exc:
            facts = ItemFacts(entry.path, root, entry.kind, entry.size, entry.mtime_ns, digest)
            return facts, exc.reason
        except Exception as exc:  # a decoder bug must not stop the run; record it instead
            log.exception("unexpected error decoding %s", entry.path)
            facts = ItemFacts(entry.path, root, entry.kind, entry.size, entry.mtime_ns, digest)
            return facts, f"unexpected error: {type(exc).__name__}: {exc}"
        finally:
            self._stage("decode", t)

    def _write(
        self,
        embed: Callable[[list[np.ndarray]], dict[str, np.ndarray]],
        batch: list[_Prepared],
        replaced: set[str],
    ) -> None:
        t = time.perf_counter()
        vectors = embed([p.image for p in batch if p.image is not None])
        self._stage("encode", t)
        per_item = [{space: rows[i : i + 1] for space, rows in vectors.items()} for i in range(len(batch))]
        self._commit(batch, per_item, replaced)

    def _write_texts(self, encoder: Encoder, batch: list[_Prepared], replaced: set[str]) -> None:
        t = time.perf_counter()
        rows = encoder.embed_texts([c for p in batch for c in p.chunks])
        self._stage("encode", t)
        per_item, start = [], 0
        for p in batch:
            per_item.append({SEMANTIC: rows[start : start + len(p.chunks)]})
            start += len(p.chunks)
        self._commit(batch, per_item, replaced)

    def _commit(
        self, batch: list[_Prepared], per_item: list[dict[str, np.ndarray]], replaced: set[str]
    ) -> None:
        t = time.perf_counter()
        old_ids: list[int] = []
        added: list[tuple[str, list[int], np.ndarray]] = []
        with self.catalog.db.atomic():
            for prepared, vectors in zip(batch, per_item):
                _, old, new_ids = self.catalog.write_item(prepared.facts, vectors)
                old_ids += old
                added += [(space, new_ids[space], vectors[space]) for space in vectors]
                if prepared.facts.path in replaced:
                    self.report.updated += 1
                else:
                    self.report.added += 1
                self.report.encoded += 1
        # Only after the commit: the in-memory indexes never hold what the catalog does not.
        self.spaces.remove(old_ids)
        for space, ids, rows in added:
            self.spaces.add(space, ids, rows)
        self._stage("write", t)


def normalise_roots(folders: Iterable[str | Path]) -> list[str]:
    """Absolute, normalised root paths, with a clear error for one that does not exist."""
    roots = []
    for folder in folders:
        path = Path(folder).expanduser()
        if not path.exists():
            raise MediaError(str(folder), "no such file or folder")
        roots.append(str(path.absolute()).rstrip("/") or "/")
    return roots
