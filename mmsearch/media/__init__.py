"""Media: finding the files to index and decoding images, audio and text documents (no torch)."""

from mmsearch.media.audio import AudioInfo, decode_audio, probe_audio, read_audio
from mmsearch.media.discover import FoundFile, Unreadable, discover, printable_path
from mmsearch.media.images import DecodedImage, decode_image
from mmsearch.media.kinds import (
    AUDIO,
    AUDIO_EXTENSIONS,
    IMAGE,
    IMAGE_EXTENSIONS,
    TEXT,
    TEXT_EXTENSIONS,
    kind_of,
)
from mmsearch.media.text import chunk_text, decode_text, name_words

__all__ = [
    "AUDIO",
    "AUDIO_EXTENSIONS",
    "IMAGE",
    "IMAGE_EXTENSIONS",
    "TEXT",
    "TEXT_EXTENSIONS",
    "AudioInfo",
    "DecodedImage",
    "FoundFile",
    "Unreadable",
    "chunk_text",
    "decode_audio",
    "decode_image",
    "decode_text",
    "discover",
    "kind_of",
    "name_words",
    "printable_path",
    "probe_audio",
    "read_audio",
]
