"""Opening an index folder for `Library.open`: which folder, its catalog, the model it records,
and the encoder checked against the vectors the index holds."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mmsearch.encoders.base import Encoder, ModelSpec
from mmsearch.encoders.registry import load_encoder, resolve_model, upgrade_spec
from mmsearch.errors import IndexDamagedError, IndexNotFoundError, ModelMismatchError
from mmsearch.media.paths import canonical_path
from mmsearch.store.catalog import Catalog
from mmsearch.store.spaces import MANIFEST, SpaceSet

if TYPE_CHECKING:
    from mmsearch.config import Settings

log = logging.getLogger(__name__)

CATALOG = "catalog.db"
_MODEL_KEY = "model"


def _on_readonly_media(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY) or not os.access(folder, os.W_OK)
    except OSError:
        return False


def open_catalog(
    path: str | os.PathLike[str], *, create: bool, readonly: bool
) -> tuple[Path, Catalog, bool]:
    """The index folder (canonical), its catalog (created if allowed) and whether it is open
    read-only (asked for, or on read-only media).

    Raises:
        IndexNotFoundError, IndexDamagedError, IndexFormatError.
    """
    folder = Path(canonical_path(path))
    if folder.exists() and not folder.is_dir():
        raise IndexNotFoundError(
            f"{folder} is a file, not an index folder; give the folder that holds catalog.db."
        )
    catalog_path = folder / CATALOG
    readonly = readonly or (folder.is_dir() and _on_readonly_media(folder))
    if readonly:
        create = False
    leftovers = [p.name for p in (folder / MANIFEST, *folder.glob("*.faiss")) if p.exists()]
    if catalog_path.is_file() and catalog_path.stat().st_size == 0:
        if leftovers or not create:
            raise IndexDamagedError(
                f"{catalog_path} is empty (0 bytes) although the index was used before; "
                "restore the folder from a backup, or move it away and index again."
            )
        # Otherwise it is a catalog being created right now (SQLite writes its first page
        # lazily) or one whose creation was killed: SQLite takes an empty file as a new one.
    if not catalog_path.is_file():
        if not create:
            hint = " (it holds vector files but no catalog: damaged?)" if leftovers else ""
            raise IndexNotFoundError(
                f"No index at {folder}{hint}. Create one with `mmsearch index DIR --index {folder}`."
            )
        folder.mkdir(parents=True, exist_ok=True)
    return folder, Catalog(catalog_path, readonly=readonly), readonly


def recorded_model(
    catalog: Catalog, folder: Path, model: str | None, settings: Settings, readonly: bool
) -> ModelSpec:
    """The model the index records (recorded now if it is new), upgraded to this version's
    options, and checked against the `model` asked for."""
    stored = catalog.get_meta(_MODEL_KEY)
    if stored is None:
        if readonly:
            raise IndexDamagedError(
                f"{folder / CATALOG} records no model: it is not a finished mmsearch index."
            )
        wanted = resolve_model(model or settings.model)
        # Atomic: two runs creating the same index agree on one model.
        stored = catalog.claim_meta(_MODEL_KEY, json.dumps(wanted.to_json()))
    try:
        recorded = ModelSpec.from_json(json.loads(stored))
    except (ValueError, TypeError, KeyError) as exc:
        raise IndexDamagedError(
            f"{folder / CATALOG} records an unreadable model ({exc}); the index is damaged."
        ) from exc
    spec = upgrade_spec(recorded)
    if spec != recorded and not readonly:
        log.info("model %s of %s gains options %s", spec.name, folder, dict(spec.options))
        catalog.set_meta(_MODEL_KEY, json.dumps(spec.to_json()))
    wanted = resolve_model(model) if model is not None else spec
    if wanted.identity() != spec.identity():
        if wanted.name == spec.name:
            # Same name, other settings: a preset changed between versions ("built with
            # 'offline-default', not 'offline-default'" left the user guessing).
            differ = sorted(
                key for key in {*wanted.options, *spec.options}
                if wanted.options.get(key) != spec.options.get(key)
            )
            raise ModelMismatchError(
                f"The index at {folder} was built with other settings of model "
                f"{spec.name!r} (options {', '.join(differ)} differ from this version's). "
                "Open it without naming a model to search it as it was built, or build a "
                "new index with this version (--index NEW_FOLDER)."
            )
        raise ModelMismatchError(
            f"The index at {folder} was built with model {spec.name!r}, not {model!r}. "
            "Open it without naming a model, or build a new index for the other model "
            "(--index NEW_FOLDER)."
        )
    return spec


def load_checked_encoder(
    spec: ModelSpec, settings: Settings, spaces: SpaceSet, folder: Path
) -> Encoder:
    """The index's encoder, refused when it gives vectors of other sizes than the index's
    spaces hold."""
    encoder = load_encoder(spec, device=settings.device, cache_dir=settings.model_cache())
    known = spaces.dims
    clash = {s: d for s, d in encoder.all_spaces().items() if s in known and known[s] != d}
    if clash:
        raise ModelMismatchError(
            f"Model {spec.name!r} now gives vectors of {clash} dimensions, but the "
            f"index at {folder} holds {known}. Were its weights replaced? Rebuild the "
            "index in a new folder."
        )
    return encoder

