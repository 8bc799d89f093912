"""What `Library` tells of one item and of the whole index: `ItemInfo` from the catalog's rows,
`Stats` from the catalog, the manifest and the files on disk."""

from __future__ import annotations

import os
from pathlib import Path

from mmsearch.encoders.base import SEMANTIC, VIDEO_FRAME
from mmsearch.errors import NotIndexedError
from mmsearch.library_open import CATALOG
from mmsearch.media.kinds import VIDEO
from mmsearch.media.paths import canonical_path
from mmsearch.results import ItemInfo, PartialFilm, Stats
from mmsearch.store.catalog import Catalog
from mmsearch.store.manifest import read_manifest


def item_info(catalog: Catalog, folder: Path, path_or_id: str | os.PathLike[str] | int) -> ItemInfo:
    """One item of the index in `folder`, by path or id.

    Raises:
        NotIndexedError: the file (or id) is not in the index.
    """
    if isinstance(path_or_id, int) and not isinstance(path_or_id, bool):
        full = catalog.items_by_id([path_or_id]).get(path_or_id)
        if full is None:
            raise NotIndexedError(f"No item with id {path_or_id} in the index at {folder}.")
    else:
        target = canonical_path(path_or_id)
        row = catalog.item_by_path(target)
        if row is None:
            raise NotIndexedError(f"{target} is not in the index at {folder}.")
        full = catalog.items_by_id([row.id])[row.id]
    tags, transcript = catalog.audio_details(full["id"])
    read = [w.text for w in catalog.read_words(full["id"])]
    moments = (
        catalog.item_spans(full["id"], SEMANTIC, VIDEO_FRAME)
        if full["kind"] == VIDEO
        else []
    )
    return ItemInfo(
        id=full["id"],
        path=full["path"], kind=full["kind"], size=full["size"], status=full["status"],
        error=full["error"], width=full["width"], height=full["height"],
        taken_at=full["taken_at"], duration=full["duration"], sample_rate=full["sample_rate"],
        channels=full["channels"], codec=full["codec"], tags=tags, transcript=transcript,
        read_text=read, frame_rate=full.get("frame_rate"), rotation=full.get("rotation"),
        moments=moments, indexed_until=full.get("indexed_until"),
    )


def index_stats(catalog: Catalog, folder: Path, model: str) -> Stats:
    """What the index in `folder`, built with `model`, holds."""
    counts = catalog.counts()
    manifest = read_manifest(folder)
    spaces = {
        name: {k: entry.get(k) for k in ("dim", "factory", "count")}
        for name, entry in manifest.get("spaces", {}).items()
    }
    catalog_bytes = sum(
        f.stat().st_size for f in folder.glob(CATALOG + "*") if f.is_file()
    )
    index_bytes = sum(f.stat().st_size for f in folder.glob("*.faiss"))
    return Stats(
        path=str(folder),
        model=model,
        items=dict(counts.get("ok", {})),
        failed=sum(counts.get("error", {}).values()),
        roots=catalog.roots(),
        spaces=spaces,
        offline_roots=[r.path for r in catalog.root_rows() if r.missing_since is not None],
        exclusions=catalog.exclusions(),
        catalog_bytes=catalog_bytes,
        index_bytes=index_bytes,
        media_bytes=catalog.total_bytes(),
        partial=[PartialFilm(*row) for row in catalog.partial_items()],
    )
