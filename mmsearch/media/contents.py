"""A file's bytes and its content hash: how a moved, renamed or unchanged file is recognised."""

from __future__ import annotations

import hashlib

from mmsearch.errors import MediaError

_BLOCK = 1 << 20


def file_hash(data: bytes) -> str:
    """Content hash used to recognise moved, renamed and unchanged files."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_hash_streamed(path: str) -> str:
    """`file_hash` of a file read in blocks, for files too large to hold in memory."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            while block := f.read(_BLOCK):
                digest.update(block)
    except OSError as exc:
        raise MediaError(path, f"cannot read: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def read_bytes(path: str) -> bytes:
    """The whole file; an unreadable one is a `MediaError` naming it."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise MediaError(path, f"cannot read: {exc.strerror or exc}") from exc
