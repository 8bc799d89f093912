"""Which files mmsearch indexes, and as what kind, decided by file extension alone."""

from __future__ import annotations

import os

IMAGE = "image"
TEXT = "text"

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif",
        ".png", ".apng",
        ".webp", ".gif", ".bmp", ".tif", ".tiff",
        ".heic", ".heif", ".hif",  # .hif: what Fujifilm and Canon cameras name their HEIF files
        ".avif",
    }
)  # fmt: skip
"""Image files by extension. The content is sniffed again when decoding; the name only selects."""

TEXT_EXTENSIONS: frozenset[str] = frozenset(
    {".txt", ".text", ".md", ".markdown", ".rst", ".org", ".adoc"}
)
"""Prose documents by extension.

Deliberately left out: .csv, .json, .log and source code. They are data rather than prose, embed
poorly as sentences, and in a typical home folder would outnumber and crowd out real documents.
"""

_KINDS: dict[str, str] = {ext: IMAGE for ext in IMAGE_EXTENSIONS} | {
    ext: TEXT for ext in TEXT_EXTENSIONS
}


def kind_of(path: str | os.PathLike[str]) -> str | None:
    """The kind of file `path` names, by its extension (case-insensitive).

    Args:
        path: A file path or bare file name.

    Returns:
        `IMAGE`, `TEXT`, or None when mmsearch does not index such files.
    """
    return _KINDS.get(os.path.splitext(os.fspath(path))[1].lower())
