"""`Library`: the one public entry object. Opens an index folder; indexes, searches, removes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from mmsearch import collection
from mmsearch.encoders.base import Encoder, ModelSpec
from mmsearch.errors import IndexDamagedError
from mmsearch.library_guard import storage_errors, write_lock
from mmsearch.library_indexing import Indexer
from mmsearch.library_items import index_stats, item_info
from mmsearch.library_open import CATALOG, load_checked_encoder, open_catalog, recorded_model
from mmsearch.library_search import TunedAdapterFile, make_searcher, vector_query
from mmsearch.media.paths import canonical_path, is_within
from mmsearch.query.filters import Filters
from mmsearch.query.proposals import PooledRegions
from mmsearch.query.rerank import Reranker
from mmsearch.query.search import Hits, Query, Searcher
from mmsearch.results import Hit, IndexReport, ItemInfo, Skipped, Stats
from mmsearch.store.catalog import Catalog
from mmsearch.store.catalog_errors import translate_errors
from mmsearch.store.spaces import MilvusOptions, SpaceSet
from mmsearch.version import __version__

if TYPE_CHECKING:
    from mmsearch.config import Settings
    from mmsearch.ingest_run import ProgressCallback
    from mmsearch.learning import TuneReport
    from mmsearch.watch import WatchBatch, WatchNotice

PathArg = str | os.PathLike[str]


def _paths(value: Iterable[PathArg] | PathArg) -> list[PathArg]:
    return [value] if isinstance(value, (str, os.PathLike)) else list(value)


class Library:
    """A searchable index of a media collection, stored in one folder.

    Example:
        >>> from mmsearch import Library
        >>> with Library.open("my-index") as lib:          # created if missing
        ...     lib.index(["~/Pictures", "~/Notes"])
        ...     for hit in lib.search("a dog on the beach", k=5):
        ...         print(f"{hit.score:.3f} {hit.path}")
        ...     similar = lib.search(image="~/Pictures/dog.jpg")

    The model that builds an index is recorded in it at creation; later opens use it.

    One `Library` may be shared by many threads: searches run side by side, and see what any
    thread or process has committed since (checked per search, at the cost of one tiny query).
    One process at a time indexes or removes (the others get `IndexBusyError`).
    """

    def __init__(
        self,
        path: Path,
        catalog: Catalog,
        spec: ModelSpec,
        settings: Settings,
        *,
        readonly: bool = False,
    ) -> None:
        self.path = path
        self.settings = settings
        self.spec = spec
        self.readonly = readonly
        self._catalog = catalog
        about = {"model": spec.to_json(), "mmsearch_version": __version__}
        milvus = None
        if settings.vector_store == "milvus":
            uri = settings.milvus_uri or str(path / "milvus.db")
            milvus = MilvusOptions(uri, settings.milvus_token, settings.milvus_index)
        self._spaces = SpaceSet(
            path, catalog, settings.exact_search_below, about, readonly=readonly, milvus=milvus
        )
        self._encoder: Encoder | None = None
        self._encoder_lock = threading.Lock()
        # Every image's pooled regions, kept between searches (the reranker's proposals).
        self._pooled_regions = PooledRegions(self.encoder, path)
        self._tuned_adapter = TunedAdapterFile(path)
        self._indexer = Indexer(
            path, catalog, self._spaces, self.encoder, settings, spec, self._pooled_regions
        )

    @classmethod
    def open(
        cls,
        path: PathArg | None = None,
        *,
        model: str | None = None,
        create: bool = True,
        settings: Settings | None = None,
        readonly: bool = False,
    ) -> Library:
        """Open the index at `path` (default: the configured one), creating it if allowed.

        Args:
            path: index folder; None uses `settings.index_path()`.
            model: model preset for a new index; for an existing one it must match the
                model that built it (None accepts whatever that was).
            create: create a missing index (otherwise raise `IndexNotFoundError`).
            settings: settings to use instead of those read from the environment and config.
            readonly: never write anything (no lock, no new files): for searching, for indexes
                on read-only media, for services. An index on read-only media opens so anyway.

        Raises:
            IndexNotFoundError, IndexDamagedError, ModelMismatchError, UnknownModelError,
            IndexFormatError, ConfigError.
        """
        if settings is None:
            from mmsearch.config import load_settings

            settings = load_settings()
        folder, catalog, readonly = open_catalog(
            path if path is not None else settings.index_path(), create=create, readonly=readonly
        )
        try:
            with translate_errors(folder / CATALOG):
                spec = recorded_model(catalog, folder, model, settings, readonly)
        except BaseException:
            catalog.close()
            raise
        return cls(folder, catalog, spec, settings, readonly=readonly)

    def close(self) -> None:
        self._catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _guard(self) -> AbstractContextManager[None]:
        """Storage failures as typed errors that name the index and say what to do."""
        return storage_errors(self.path, self._spaces)

    # -- the model ----------------------------------------------------------------------------

    def encoder(self) -> Encoder:
        """The index's encoder, loaded on first use (searching or indexing new files)."""
        with self._encoder_lock:
            if self._encoder is None:
                self._encoder = load_checked_encoder(
                    self.spec, self.settings, self._spaces, self.path
                )
            return self._encoder

    # -- writing ------------------------------------------------------------------------------

    def _writing(self) -> AbstractContextManager[None]:
        """Only one process writes to an index at a time."""
        return write_lock(self.path, self._spaces, readonly=self.readonly)

    def index(
        self,
        folders: Iterable[PathArg] | PathArg | None = None,
        *,
        progress: ProgressCallback | None = None,
        verify: bool = False,
        cancel: threading.Event | None = None,
        ray: str | bool | None = None,
    ) -> IndexReport:
        """Index (or bring up to date) folder trees; None re-scans every folder indexed before.

        New and changed files are encoded; unchanged ones are not; deleted ones are removed;
        moved or renamed ones keep their vectors. Files that cannot be read are recorded with
        the reason (see `errors()`) and never stop the run. A known folder that is missing or
        empty (an unmounted drive) is reported in `IndexReport.offline` and its items are kept.

        Args:
            folders: folders or files; naming an excluded path (or one below it) includes it again.
            progress: called as the run goes (`Progress`).
            verify: re-hash files whose size and mtime look unchanged, and re-encode those whose
                content changed anyway (a tool that restores mtimes, a file system with coarse
                times). Slower: every file is read.
            cancel: set it (from any thread) to stop the run soon, between files; what was
                encoded so far is committed first, then `IndexCancelled` is raised.
            ray: decode and encode on a Ray cluster: its address, or True for this machine's
                (see `ray_address`); None follows the `ray_address` setting, False never.
                Listing, hashing and commits stay here; the files must be at the same paths
                on every node.

        Raises:
            MediaError: a new folder does not exist (before anything is changed).
            IndexBusyError: another process is indexing the same index.
            DiskFullError: the disk filled up (what was committed is kept; run again to resume).
            IndexCancelled: `cancel` was set (what was committed is kept; run again to go on).
        """
        with self._writing():
            roots = self._indexer.roots(None if folders is None else _paths(folders))
            return self._indexer.run(roots, progress, cancel, verify=verify, ray=ray)

    def watch(
        self,
        folders: Iterable[PathArg] | PathArg | None = None,
        *,
        stop: threading.Event | None = None,
        on_batch: Callable[[WatchBatch], None] | None = None,
        on_notice: Callable[[WatchNotice], None] | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Bring folders up to date, then follow them: files added, changed, renamed, moved or
        deleted are indexed (or forgotten) moments later, until `stop` is set.

        Each batch of changes goes through the same diff as `index` (one transaction per batch
        of files, so searches in other threads and processes see each batch; a rename or move
        keeps its vectors). Files still being written are indexed once they settle
        (`watch_settle_seconds`). Where events may have been lost, the folders are rescanned.

        Args:
            folders: folders to index and follow; None follows every folder indexed before.
            stop: set it (from any thread) to return soon; what was committed is kept.
            on_batch: called after each update with a `WatchBatch` (what changed, the report).
            on_notice: called with a `WatchNotice` for warnings (watch limit reached: polling).
            progress: called as each update goes (`Progress`), as for `index`.

        Raises:
            MediaError: a new folder does not exist.
            IndexBusyError: another process is indexing the index when watching starts.
        """
        from mmsearch.errors import IndexCancelled
        from mmsearch.watch import FolderWatcher, WatchBatch

        stop = stop or threading.Event()
        started = time.monotonic()

        def update(changed: list[str], cancel: threading.Event | None) -> IndexReport:
            with self._writing():
                report = self._indexer.run(changed, progress, cancel)
                # Moved away mid-run (or an earlier one), and back.
                if self._indexer.forget_vanished():
                    again = self._indexer.run(changed, progress, cancel)
                    report.added, report.moved = report.added + again.added, report.moved + again.moved
                    report.encoded += again.encoded
                    report.failures = again.failures
                return report

        try:
            report = self.index(folders, progress=progress, cancel=stop)
            with self._guard():
                roots = self._catalog.roots()
            with self._writing():  # a run killed earlier may have left such rows too
                vanished = self._indexer.forget_vanished()
            if vanished:
                report = update(roots, stop)
        except IndexCancelled:
            return
        if on_batch is not None:
            on_batch(WatchBatch("start", tuple(roots), 0, report, time.monotonic() - started))

        def exclusions() -> list[str]:
            with self._guard():
                return self._catalog.exclusions()

        if folders is not None:
            from mmsearch.ingest_plan import normalise_roots

            named = normalise_roots(_paths(folders))
            roots = [r for r in roots if any(is_within(r, n) for n in named)]
        watcher = FolderWatcher(
            roots, canonical_path(self.path), exclusions, self.settings, update, stop,
            on_batch, on_notice,
        )
        watcher.run()

    def remove(self, paths: Iterable[PathArg] | PathArg) -> int:
        """Forget files or whole folders (the files themselves are untouched). Returns the count.

        A folder indexed on its own is forgotten with everything under it. A file or folder inside
        an indexed folder is also excluded, so later runs do not bring it back (`include` undoes).

        Raises:
            NotIndexedError: a path the index does not hold.
        """
        targets = [canonical_path(p) for p in _paths(paths)]
        with self._writing():
            self._spaces.load()
            forgotten = collection.remove(self._catalog, self._spaces, targets, self.path)
            self._spaces.save()
        return forgotten

    def exclude(self, patterns: Iterable[str] | str) -> int:
        """Never index these paths or gitignore-style patterns (`*.tmp`, `**/cache/`); items
        already indexed that match are forgotten now. Returns how many were forgotten.

        Raises:
            QueryError: a pattern that is empty or not valid gitignore syntax.
        """
        clean = [collection.exclusion(p) for p in ([patterns] if isinstance(patterns, str) else patterns)]
        with self._writing():
            self._spaces.load()
            forgotten = collection.exclude(self._catalog, self._spaces, clean)
            self._spaces.save()
        return forgotten

    def include(self, patterns: Iterable[str] | str) -> None:
        """Undo `exclude` (or the exclusion `remove` left); the next `index` run finds them again.

        Raises:
            NotIndexedError: a pattern that is not excluded.
        """
        clean = [collection.exclusion(p) for p in ([patterns] if isinstance(patterns, str) else patterns)]
        with self._writing():
            collection.include(self._catalog, clean)

    def exclusions(self) -> list[str]:
        """The excluded paths and patterns."""
        with self._guard():
            return self._catalog.exclusions()

    # -- checking and repairing ---------------------------------------------------------------

    def check(self) -> list[str]:
        """Everything wrong with the index, checked in full (slow on large indexes): catalog
        integrity, vector-file checksums, damaged vectors, counts. Empty when all is well."""
        with self._guard():
            problems = [f"{CATALOG}: {p}" for p in self._catalog.integrity_problems()]
            return problems + self._spaces.problems()

    def repair(self) -> list[str]:
        """Rebuild what can be rebuilt from the catalog (vector files, full-text index, temp
        files). Returns what was done. A damaged catalog itself cannot be repaired here.

        Raises:
            IndexDamagedError: the catalog is damaged (restore the folder from a backup).
        """
        with self._writing():
            damaged = self._catalog.integrity_problems()
            if any(not p.startswith("full-text") for p in damaged):
                raise IndexDamagedError(
                    f"{self.path / CATALOG} is damaged ({damaged[0]}); it cannot be rebuilt from "
                    "anything else: restore the index folder from a backup, or index again into "
                    "a new folder."
                )
            done = [f"removed {p.name}" for p in self.path.glob("*.tmp")]
            self._spaces.clean_temp_files()
            self._spaces.rebuild_all()
            done += [f"rebuilt {space}.faiss from the catalog" for space in self._spaces.dims]
            self._catalog.rebuild_fts()
            done.append("rebuilt the full-text index")
            return done

    # -- reading ------------------------------------------------------------------------------

    def search(
        self,
        text: str | None = None,
        *,
        image: PathArg | Sequence[PathArg] | None = None,
        audio: PathArg | Sequence[PathArg] | None = None,
        k: int = 10,
        min_score: float | None = None,
        kinds: Sequence[str] = (),
        folders: Sequence[str | os.PathLike[str]] = (),
        extensions: Sequence[str] = (),
        filters: Filters | None = None,
    ) -> Hits:
        """Search by text, by example image(s) or sound(s), or any mix; best first.

        Args:
            text: a query in mmsearch's query language (`mmsearch.query.parse`), e.g.
                `'2:"red car" -night kind:image after:2020-01 size>1mb'`: weighted and negative
                terms, filters, `min:`, and `image:`/`audio:` example files.
            image: one or more example images ("more like this").
            audio: one or more example sounds ("more like this sound"). Hits on recordings
                carry `start`/`end`: where in the recording the match is.
            k: at most this many hits.
            min_score: drop matches scored below this (default: the model's cut-off); a `min:`
                in the text wins.
            kinds, folders, extensions: only items of these kinds ("image", "text", "audio"), under
                these folders, with these extensions.
            filters: any further restriction (dates, sizes, pixel sizes, exclusions).
            Restrictions given here and in the text must all hold.

        Returns:
            `Hits`, a list of `Hit`; when the cut-off hid matches, `below_cutoff` counts them
            and `best_below` is the best of their scores.

        Raises:
            QuerySyntaxError: a mistake in the text (the message points at it).
            QueryError: nothing to search for, or an example file that cannot be read.
        """
        given = Filters(tuple(kinds), tuple(os.fspath(f) for f in folders), tuple(extensions))
        query = Query(
            text=text,
            images=[os.fspath(p) for p in _paths(image or [])],
            audios=[os.fspath(p) for p in _paths(audio or [])],
            k=k,
            min_score=min_score,
            filters=given.merged(filters) if filters is not None else given,
        )
        with self._guard():
            return self._searcher(reranker=self._reranker()).search(query)

    def search_vector(
        self,
        vector: Sequence[float] | np.ndarray,
        *,
        space: str = "semantic",
        k: int = 10,
        min_score: float | None = None,
        kinds: Sequence[str] = (),
    ) -> list[Hit]:
        """Search one space with a ready-made query vector (e.g. an embedding another program
        computed with the same model, as clip-retrieval clients send); best first.

        The vector is normalised to unit length; hits are built, cut off and filtered as in
        `search`.

        Raises:
            QueryError: an unknown space, a vector of the wrong length, or one that is not finite.
        """
        query = vector_query(
            self._spaces.dims, vector, space=space, k=k, min_score=min_score, kinds=kinds
        )
        with self._guard():
            return self._searcher().search(query)

    def _searcher(self, reranker: Reranker | None = None) -> Searcher:
        """A searcher on this index (see `make_searcher`)."""
        return make_searcher(
            self._catalog, self._spaces, self.encoder, self.settings, self.spec, reranker
        )

    def tune(
        self,
        captions: PathArg | Sequence[tuple[PathArg, str]] | None = None,
        *,
        progress: Callable[[str], None] | None = None,
        seed: int = 0,
    ) -> TuneReport:
        """Learn from the captions the collection already has (Markdown alt text, sidecar
        .txt/.xmp, EXIF/XMP descriptions) and, if given, `captions`: a CSV file of
        `path,caption` or (path, caption) pairs. The adapter is turned on only when it raises
        R@1 on a held-out part of those captions (see `mmsearch/learning/`).

        Raises:
            QueryError: the captions file cannot be read.
            ReadOnlyIndexError: the index is open read-only.
        """
        from mmsearch.learning import Caption, Tuner, harvest_captions

        with self._writing():
            csv_file = None
            given: list[Caption] = []
            if isinstance(captions, (str, os.PathLike)):
                csv_file = Path(canonical_path(captions))
            elif captions is not None:
                given = [Caption(canonical_path(p), str(t), "given") for p, t in captions]
            found = harvest_captions(self._catalog, csv_file) + given
            tuner = Tuner(
                self._catalog, self.encoder, self.path, top_n=self.settings.rerank_top_n,
                progress=progress,
            )
            return tuner.run(found, seed=seed)

    def _reranker(self) -> Reranker | None:
        """The second stage, with the adapter `tune` turned on for this index, if any."""
        if not self.settings.rerank:
            return None
        with self._guard():
            adapter = self._tuned_adapter.current()
        return Reranker(
            self._catalog, self.encoder, top_n=self.settings.rerank_top_n, adapter=adapter,
            pooled=self._pooled_regions,
        )

    def item(self, path_or_id: PathArg | int) -> ItemInfo:
        """What the index knows of one file (by path, or by the `id` of a `Hit`): kind, size,
        dates, image size, and for recordings duration, sample rate, channels, codec, sound
        tags and transcript.

        Raises:
            NotIndexedError: the file (or id) is not in the index.
        """
        with self._guard():
            return item_info(self._catalog, self.path, path_or_id)

    def errors(self) -> list[Skipped]:
        """Files that could not be indexed, with the reason."""
        with self._guard():
            return [Skipped(path, reason) for path, reason in self._catalog.errors()]

    def stats(self) -> Stats:
        """What the index holds: counts per kind, model, folders, sizes on disk."""
        with self._guard():
            return index_stats(self._catalog, self.path, self.spec.name)
