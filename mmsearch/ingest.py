"""Indexing runs: scan -> diff against the catalog -> hash -> decode (threads) -> encode -> write.

Each batch of encoded files is committed to the catalog in one transaction with its vectors,
so a run killed at any point resumes where it stopped and re-encodes nothing it committed.
Reader threads decode and prepare the next files while the model encodes the current batch.
This module wires one run; its stages stand beside it: `ingest_plan` (scan, diff, moves),
`ingest_decode` (reader threads), `ingest_encode` (the model), `ingest_write` (commits), all
keeping one `ingest_run.RunState`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from mmsearch.config import Settings
from mmsearch.encoders.base import Encoder
from mmsearch.ingest_decode import Decoder
from mmsearch.ingest_encode import EncodeStage
from mmsearch.ingest_plan import Job, Planner
from mmsearch.ingest_run import ProgressCallback, RunState
from mmsearch.ingest_write import CatalogWriter
from mmsearch.results import IndexReport, Progress
from mmsearch.store.catalog import Catalog
from mmsearch.store.spaces import SpaceSet


class EncodeRunner(Protocol):
    """Runs the decode + encode stages elsewhere (`ingest_ray.RayRunner`): it hands each batch
    back through the run's `writer`, so commits are those of a local run."""

    def encode(self, ingest: Ingest, jobs: list[Job]) -> None: ...


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
        self._runner = runner
        self.state = RunState(progress, cancel)
        self.planner = Planner(catalog, self.state)
        self.decoder = Decoder(settings, self.state)
        self.writer = CatalogWriter(catalog, spaces, self.state)

    @property
    def report(self) -> IndexReport:
        return self.state.report

    def run(self, roots: list[str], *, verify: bool = False) -> IndexReport:
        """Bring `roots` up to date; with `verify`, re-hash unchanged-looking files too (content
        changed behind the same size and mtime is otherwise invisible)."""
        started = time.perf_counter()
        state = self.state
        self.spaces.clean_temp_files()
        self.spaces.load()
        self.catalog.add_roots(roots)
        t = time.perf_counter()
        plan = self.planner.plan(roots, verify)
        state.stage("scan", t)
        with ThreadPoolExecutor(self.settings.workers(), thread_name_prefix="mmsearch-read") as pool:
            t = time.perf_counter()
            self.planner.hash_candidates(plan, pool)
            state.stage("hash", t)
            self.writer.remove_missing(plan.missing)
            self.writer.record_unreadable(plan.unreadable, plan.roots)
            if plan.to_encode and self._runner is not None:
                self._runner.encode(self, plan.to_encode)
                state.stop_if_cancelled()
            elif plan.to_encode:
                self._encode_all(plan.to_encode, pool)
        self.planner.forget_emptied_offline_roots()
        t = time.perf_counter()
        state.progress(Progress("save", 0, 1))
        self.spaces.save()
        state.progress(Progress("save", 1, 1))
        state.stage("save", t)
        self.report.seconds = time.perf_counter() - started
        return self.report

    def _encode_all(self, jobs: list[Job], pool: ThreadPoolExecutor) -> None:
        t = time.perf_counter()
        encoder = self._encoder_factory()
        self.spaces.ensure(encoder.all_spaces())
        self.state.stage("load_model", t)
        EncodeStage(self.settings, self.state, self.decoder, self.writer).run(encoder, jobs, pool)
        self.state.stop_if_cancelled()
