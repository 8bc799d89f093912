"""Media: finding the files to index and decoding images, audio and text documents (no torch)."""

from importlib import import_module
from typing import Any

# Eager, unlike the decoders below: the function `discover` shares its name with its module, and
# importing the module later would bind the module where the function is expected.
from mmsearch.media.discover import FoundFile, Unreadable, discover, printable_path
from mmsearch.media.kinds import (
    AUDIO,
    AUDIO_EXTENSIONS,
    IMAGE,
    IMAGE_EXTENSIONS,
    TEXT,
    TEXT_EXTENSIONS,
    VIDEO,
    VIDEO_EXTENSIONS,
    kind_of,
)

# The decoders load on first use (textual's lazy widgets do the same): the shells and a search
# need the kinds, and must not pay for PIL and the audio stack to get them.
_LAZY = {
    "AudioInfo": "audio", "decode_audio": "audio", "probe_audio": "audio", "read_audio": "audio",
    "DecodedImage": "images", "decode_image": "images",
    "chunk_text": "text", "decode_text": "text", "name_words": "text",
    "VideoInfo": "video", "probe_video": "video", "keyframes": "video", "frame_at": "video",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"mmsearch.media.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AUDIO",
    "AUDIO_EXTENSIONS",
    "IMAGE",
    "IMAGE_EXTENSIONS",
    "TEXT",
    "TEXT_EXTENSIONS",
    "VIDEO",
    "VIDEO_EXTENSIONS",
    "AudioInfo",
    "DecodedImage",
    "FoundFile",
    "Unreadable",
    "VideoInfo",
    "chunk_text",
    "decode_audio",
    "decode_image",
    "decode_text",
    "discover",
    "frame_at",
    "keyframes",
    "kind_of",
    "name_words",
    "printable_path",
    "probe_audio",
    "probe_video",
    "read_audio",
]
