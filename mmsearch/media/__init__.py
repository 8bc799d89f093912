"""Media: finding the files to index and decoding images and text documents (no torch here)."""

from mmsearch.media.discover import FoundFile, Unreadable, discover, printable_path
from mmsearch.media.images import DecodedImage, decode_image
from mmsearch.media.kinds import IMAGE, IMAGE_EXTENSIONS, TEXT, TEXT_EXTENSIONS, kind_of
from mmsearch.media.text import chunk_text, decode_text, name_words

__all__ = [
    "IMAGE",
    "IMAGE_EXTENSIONS",
    "TEXT",
    "TEXT_EXTENSIONS",
    "DecodedImage",
    "FoundFile",
    "Unreadable",
    "chunk_text",
    "decode_image",
    "decode_text",
    "discover",
    "kind_of",
    "name_words",
    "printable_path",
]
