"""Which files mmsearch indexes, and as what kind, decided by file extension alone."""

from __future__ import annotations

import os

IMAGE = "image"
TEXT = "text"
AUDIO = "audio"
VIDEO = "video"

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

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc", ".caf",
        ".ogg", ".oga", ".opus",
        ".mp3", ".m4a", ".aac",
        ".wma",
    }
)  # fmt: skip
"""Sound files by extension (recordings, sample packs, podcasts, voice memos).

The content is sniffed again when decoding: libsndfile reads WAV, AIFF, CAF, FLAC and Ogg, FFmpeg
(PyAV) the rest. Left out: .m4b/.m4r audiobooks and ringtones, rare enough to add when asked for.
"""

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".3gp", ".3g2",
        ".mts", ".m2ts", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv",
    }
)  # fmt: skip
"""Films and clips by extension (phones: .mp4/.mov/.3gp, cameras: .mts/.m2ts, the web: .webm).
A container holding only sound (an .mp4 of a voice memo) is still indexed, as a video without
pictures; one FFmpeg cannot open is skipped with the reason. Left out: .ts, which in a home
folder is far more often TypeScript than an MPEG transport stream."""

_KINDS: dict[str, str] = (
    {ext: IMAGE for ext in IMAGE_EXTENSIONS}
    | {ext: TEXT for ext in TEXT_EXTENSIONS}
    | {ext: AUDIO for ext in AUDIO_EXTENSIONS}
    | {ext: VIDEO for ext in VIDEO_EXTENSIONS}
)


def kind_of(path: str | os.PathLike[str]) -> str | None:
    """The kind of file `path` names, by its extension (case-insensitive).

    Args:
        path: A file path or bare file name.

    Returns:
        `IMAGE`, `TEXT`, `AUDIO`, `VIDEO`, or None when mmsearch does not index such files.
    """
    return _KINDS.get(os.path.splitext(os.fspath(path))[1].lower())
