"""An index folder's `manifest.json`: what each space's vector file is (index type, count,
checksums, highest catalog vector id), read defensively, written atomically, and the
checksums that hold a file to it."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from mmsearch.store.vectors import write_atomic

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 2
"""2: each space records `max_id`, the highest catalog vector id its file holds."""
_ENTRY_TYPES: dict[str, type | tuple[type, ...]] = {
    "factory": str,
    "dim": int,
    "count": int,
    "sha256": str,
    "size": int,
    "mtime_ns": int,
}


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest, or {} when it is missing, unreadable or not shaped like one (the vector
    files are then rebuilt from the catalog: the manifest only ever describes a cache)."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s is unreadable (%s); vector indexes will be rebuilt from the catalog", path, exc)
        return {}
    spaces = data.get("spaces") if isinstance(data, dict) else None
    if not isinstance(spaces, dict) or not all(_entry_ok(e) for e in spaces.values()):
        log.warning("%s is not a valid manifest; vector indexes will be rebuilt from the catalog", path)
        return {}
    return data


def _entry_ok(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    if entry.get("backend") == "milvus":  # no file: the collection is described instead
        return all(isinstance(entry.get(k), t) for k, t in
                   (("collection", str), ("dim", int), ("max_id", int), ("factory", str)))
    for key, kind in _ENTRY_TYPES.items():
        value = entry.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return False
    max_id = entry.get("max_id")
    return max_id is None or (isinstance(max_id, int) and not isinstance(max_id, bool))


def file_stamp(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, or None when it cannot be read."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new one, never half."""
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True)))


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


_CHUNK = 8 << 20


def file_xxh3(path: Path) -> str:
    """A fast checksum of the whole file (xxh3-128): ~25 ms of hashing per 500 MB on top of
    reading it (sha256 costs ~400 ms more; `scripts/bench_checksum.py`), cheap enough to check
    every vector file each time it is loaded."""
    import xxhash

    digest = xxhash.xxh3_128()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
