"""`Library`: the one public entry object. Opens an index folder; indexes, searches, removes."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from mmsearch.config import Settings
from mmsearch.encoders.base import Encoder, ModelSpec
from mmsearch.encoders.registry import default_cutoffs, load_encoder, resolve_model
from mmsearch.errors import (
    IndexBusyError,
    IndexNotFoundError,
    MmsearchError,
    ModelMismatchError,
    NotIndexedError,
)
from mmsearch.ingest import Ingest, ProgressCallback, normalise_roots
from mmsearch.query.search import Filters, Query, Searcher
from mmsearch.results import Hit, IndexReport, Skipped, Stats
from mmsearch.store.catalog import Catalog
from mmsearch.store.spaces import SpaceSet, read_manifest
from mmsearch.version import __version__

log = logging.getLogger(__name__)

CATALOG = "catalog.db"
_MODEL_KEY = "model"


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
    """

    def __init__(self, path: Path, catalog: Catalog, spec: ModelSpec, settings: Settings) -> None:
        self.path = path
        self.settings = settings
        self.spec = spec
        self._catalog = catalog
        about = {"model": spec.to_json(), "mmsearch_version": __version__}
        self._spaces = SpaceSet(path, catalog, settings.exact_search_below, about)
        self._encoder: Encoder | None = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        model: str | None = None,
        create: bool = True,
        settings: Settings | None = None,
    ) -> "Library":
        """Open the index at `path` (default: the configured one), creating it if allowed.

        Args:
            path: index folder; None uses `settings.index_path()`.
            model: model preset for a new index; for an existing one it must match the
                model that built it (None accepts whatever that was).
            create: create a missing index (otherwise raise `IndexNotFoundError`).
            settings: settings to use instead of those read from the environment and config.

        Raises:
            IndexNotFoundError, ModelMismatchError, UnknownModelError, IndexFormatError.
        """
        settings = settings or Settings()
        folder = Path(path).expanduser() if path is not None else settings.index_path()
        if not (folder / CATALOG).is_file():
            if not create:
                raise IndexNotFoundError(
                    f"No index at {folder}. Create one with `mmsearch index DIR --index {folder}`."
                )
            folder.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(folder / CATALOG)
        stored = catalog.get_meta(_MODEL_KEY)
        if stored is None:
            spec = resolve_model(model or settings.model)
            catalog.set_meta(_MODEL_KEY, json.dumps(spec.to_json()))
        else:
            spec = ModelSpec.from_json(json.loads(stored))
            if model is not None and resolve_model(model).identity() != spec.identity():
                catalog.close()
                raise ModelMismatchError(
                    f"The index at {folder} was built with model {spec.name!r}, not {model!r}. "
                    "Open it without naming a model, or build a new index for the other model "
                    "(--index NEW_FOLDER)."
                )
        return cls(folder, catalog, spec, settings)

    def close(self) -> None:
        self._catalog.close()

    def __enter__(self) -> "Library":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the model ----------------------------------------------------------------------------

    def encoder(self) -> Encoder:
        """The index's encoder, loaded on first use (searching or indexing new files)."""
        if self._encoder is None:
            encoder = load_encoder(
                self.spec, device=self.settings.device, cache_dir=self.settings.model_cache()
            )
            known = self._spaces.dims
            clash = {s: d for s, d in encoder.spaces.items() if s in known and known[s] != d}
            if clash:
                raise ModelMismatchError(
                    f"Model {self.spec.name!r} now gives vectors of {clash} dimensions, but the "
                    f"index at {self.path} holds {known}. Were its weights replaced? Rebuild the "
                    "index in a new folder."
                )
            self._encoder = encoder
        return self._encoder

    # -- writing ------------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Only one process writes to an index at a time."""
        with open(self.path / "write.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IndexBusyError(
                    f"Another mmsearch process is writing to {self.path}; wait for it to finish."
                ) from None
            yield

    def index(
        self,
        folders: Iterable[str | os.PathLike[str]] | str | os.PathLike[str] | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> IndexReport:
        """Index (or bring up to date) folder trees; None re-scans every folder indexed before.

        New and changed files are encoded; unchanged ones are not; deleted ones are removed;
        moved or renamed ones keep their vectors. Files that cannot be read are recorded with
        the reason (see `errors()`) and never stop the run.

        Raises:
            MediaError: a folder does not exist (before anything is changed).
            IndexBusyError: another process is indexing the same index.
        """
        if folders is None:
            roots = self._catalog.roots()
        elif isinstance(folders, (str, os.PathLike)):
            roots = normalise_roots([folders])
        else:
            roots = normalise_roots(folders)
        if not roots:
            raise MmsearchError(
                f"No folders to index in {self.path} yet: name one, e.g. `mmsearch index ~/Pictures`."
            )
        with self._writing():
            run = Ingest(self._catalog, self._spaces, self.encoder, self.settings, progress)
            return run.run(roots)

    def remove(self, paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> int:
        """Forget files or whole folders (the files themselves are untouched). Returns the count.

        Raises:
            NotIndexedError: a path the index does not hold.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        targets = [str(Path(p).expanduser().absolute()).rstrip("/") or "/" for p in paths]
        with self._writing():
            self._spaces.load()
            ids: list[int] = []
            for target in targets:
                rows = self._catalog.items_under(target)
                if not rows and target not in self._catalog.roots():
                    raise NotIndexedError(
                        f"{target} is not in the index at {self.path}; `mmsearch info` lists "
                        "the indexed folders."
                    )
                ids += [row.id for row in rows.values()]
            self._spaces.remove(self._catalog.delete_items(ids))
            for target in targets:
                self._catalog.remove_root(target)
            self._spaces.save()
        return len(ids)

    # -- reading ------------------------------------------------------------------------------

    def search(
        self,
        text: str | None = None,
        *,
        image: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        k: int = 10,
        min_score: float | None = None,
        kinds: Sequence[str] = (),
        folders: Sequence[str | os.PathLike[str]] = (),
        extensions: Sequence[str] = (),
    ) -> list[Hit]:
        """Search by text, by example image(s), or both; best first.

        Args:
            text: what to look for, e.g. `"a red car"`; supports weights and negatives
                (`2:"red car" -night`).
            image: one or more example images ("more like this").
            k: at most this many hits.
            min_score: drop matches whose cosine is below this (default: the model's cut-off).
            kinds, folders, extensions: only items of these kinds ("image", "text"), under
                these folders, with these extensions.

        Raises:
            QueryError: nothing to search for, or an example image that cannot be read.
        """
        images: list[str] = []
        if isinstance(image, (str, os.PathLike)):
            images = [os.fspath(image)]
        elif image is not None:
            images = [os.fspath(p) for p in image]
        query = Query(
            text=text,
            images=images,
            k=k,
            min_score=min_score,
            filters=Filters(tuple(kinds), tuple(os.fspath(f) for f in folders), tuple(extensions)),
        )
        searcher = Searcher(
            self._catalog, self._spaces, self.encoder, self.settings, default_cutoffs(self.spec)
        )
        return searcher.search(query)

    def errors(self) -> list[Skipped]:
        """Files that could not be indexed, with the reason."""
        return [Skipped(path, reason) for path, reason in self._catalog.errors()]

    def stats(self) -> Stats:
        """What the index holds: counts per kind, model, folders, sizes on disk."""
        counts = self._catalog.counts()
        manifest = read_manifest(self.path)
        spaces = {
            name: {k: entry.get(k) for k in ("dim", "factory", "count")}
            for name, entry in manifest.get("spaces", {}).items()
        }
        catalog_bytes = sum(
            f.stat().st_size for f in self.path.glob(CATALOG + "*") if f.is_file()
        )
        index_bytes = sum(f.stat().st_size for f in self.path.glob("*.faiss"))
        return Stats(
            path=str(self.path),
            model=self.spec.name,
            items=dict(counts.get("ok", {})),
            failed=sum(counts.get("error", {}).values()),
            roots=self._catalog.roots(),
            spaces=spaces,
            catalog_bytes=catalog_bytes,
            index_bytes=index_bytes,
            media_bytes=self._catalog.total_bytes(),
        )
