"""Indexing for `Library`: which roots a run covers, one ingest run (here or on a Ray cluster),
and the error rows of files that vanished mid-run and are back. The caller holds the write lock;
the indexing pipeline itself is imported only when a run starts (a search needs none of it)."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmsearch import collection
from mmsearch.encoders.base import Encoder, ModelSpec
from mmsearch.errors import MediaError, MmsearchError
from mmsearch.query.proposals import PooledRegions
from mmsearch.results import IndexReport
from mmsearch.store.catalog import Catalog
from mmsearch.store.spaces import SpaceSet

if TYPE_CHECKING:
    from mmsearch.config import Settings
    from mmsearch.ingest_run import ProgressCallback


class Indexer:
    """Indexing runs on one index's catalog and vector stores, with its model."""

    def __init__(
        self,
        folder: Path,
        catalog: Catalog,
        spaces: SpaceSet,
        encoder: Callable[[], Encoder],
        settings: Settings,
        spec: ModelSpec,
        pooled: PooledRegions,
    ) -> None:
        self.folder = folder
        self.catalog = catalog
        self.spaces = spaces
        self.encoder = encoder
        self.settings = settings
        self.spec = spec
        self.pooled = pooled

    def roots(self, named: Sequence[str | os.PathLike[str]] | None) -> list[str]:
        """The roots a run covers: those `named` (included again if they were excluded), or
        with None every root indexed before.

        Raises:
            MediaError: a new root does not exist.
            MmsearchError: there is nothing to index.
        """
        # Loaded here: a search needs none of the indexing pipeline.
        from mmsearch.ingest_plan import normalise_roots

        known = self.catalog.roots()
        if named is None:
            roots = known
        else:
            roots = normalise_roots(list(named))
            for root in roots:
                if not os.path.exists(root) and root not in known:
                    raise MediaError(root, "no such file or folder")
            collection.include_named(self.catalog, roots)
        if not roots:
            raise MmsearchError(
                f"No folders to index in {self.folder} yet: name one, e.g. "
                "`mmsearch index ~/Pictures`."
            )
        return roots

    def run(
        self,
        roots: list[str],
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
        *,
        verify: bool = False,
        ray: str | bool | None = None,
    ) -> IndexReport:
        """One ingest run over known `roots`; the caller holds the write lock."""
        from mmsearch.ingest import Ingest

        runner = None
        address = self.settings.ray_address if ray is None else ray
        if address:
            from mmsearch.ingest_ray import LOCAL, RayRunner

            runner = RayRunner(LOCAL if address is True else str(address), self.spec, self.settings)
        run = Ingest(
            self.catalog, self.spaces, self.encoder, self.settings, progress, cancel, runner
        )
        report = run.run(roots, verify=verify)
        if self.settings.rerank:  # searches in new processes start pooled
            self.pooled.save(self.catalog)
        return report

    def forget_vanished(self) -> bool:
        """Forget the error rows of files that vanished while a run read them but are there
        again (a file moved out and back while a watcher indexed): with their size and time
        unchanged, the diff would otherwise keep "no such file" for good. True if any."""
        gone = os.strerror(errno.ENOENT)
        paths = [p for p, why in self.catalog.errors() if gone in (why or "") and os.path.isfile(p)]
        rows = [row for row in map(self.catalog.item_by_path, paths) if row and row.status != "ok"]
        if rows:
            self.spaces.remove(self.catalog.delete_items([row.id for row in rows]))
        return bool(rows)
