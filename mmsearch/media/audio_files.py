"""Audio files before decoding: opening, sniffing the container from its first bytes, loading the
decoder libraries on first use, and the short reasons a failure is reported with. Shared by both
decoders (`audio_sndfile`, `audio_ffmpeg`) and the pipeline in `audio`."""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from mmsearch.errors import MediaError

log = logging.getLogger(__name__)

_READ_FRAMES = 1 << 16  # decoder frames per chunk: bounded memory even at 384 kHz x 8 channels
_HEAD_BYTES = 64  # enough to tell the containers apart
_W64_GUID = bytes.fromhex("726966662e91cf11a5d628db04c10000")  # "riff" plus the rest of its GUID
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")

_import_lock = threading.Lock()
_modules: dict[str, Any] = {}


# --------------------------------------------------------------------------- files and reasons


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file's header says about it.

    Attributes:
        duration: Length in seconds.
        sample_rate: Samples per second per channel, as stored.
        channels: Number of channels, as stored.
        codec: The codec: libsndfile's subtype ("PCM_16", "FLOAT", "FLAC", "VORBIS", "OPUS")
            for the files libsndfile reads, FFmpeg's codec name ("mp3", "aac", "wmav2", ...)
            for the rest.
        frames: Length in samples per channel (`duration * sample_rate`, rounded).
    """

    duration: float
    sample_rate: int
    channels: int
    codec: str
    frames: int


def _open(path: str) -> IO[bytes]:
    try:
        return open(path, "rb")  # the callers close it with `with`
    except OSError as exc:
        raise _Unreadable(path, _os_reason(exc)) from None


def _read_head(fobj: IO[bytes], path: str) -> bytes:
    try:
        head = fobj.read(_HEAD_BYTES)
        fobj.seek(0)
    except OSError as exc:
        raise _Unreadable(path, _os_reason(exc)) from None
    if not head:
        raise MediaError(path, "empty file (0 bytes)")
    return head


class _Unreadable(MediaError):
    """The operating system failed to read the file: never survived as damage."""


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found (deleted or moved?)"
    if isinstance(exc, PermissionError):
        return "cannot read: permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    return f"cannot read: {exc.strerror or exc}"

_NOT_AUDIO = frozenset({"PNG image", "JPEG image", "GIF image", "WebP image", "PDF", "ZIP archive"})
# Two bytes of frame sync: one random file in a few thousand starts like that.
_WEAK_SIGNS = frozenset({"MPEG audio", "ADTS"})


def _sniff(head: bytes) -> str | None:
    """The container the first bytes announce: it picks the decoder and words the messages."""
    tag = head[8:12]
    if head.startswith((b"RIFF", b"RIFX")) and tag == b"WAVE" or head.startswith(b"RF64"):
        return "WAV"
    if head.startswith(b"RIFF") and tag == b"WEBP":
        return "WebP image"
    if head.startswith(_W64_GUID):
        return "W64"
    if head.startswith(b"FORM") and tag in (b"AIFF", b"AIFC"):
        return "AIFF"
    if head.startswith(b"caff"):
        return "CAF"
    if head.startswith(b"fLaC"):
        return "FLAC"
    if head.startswith(b"OggS"):
        return "Ogg"
    if head.startswith(b"ID3"):
        return "MP3"  # or FLAC/AAC behind an ID3 tag: FFmpeg sorts that out
    if head[4:8] == b"ftyp":
        return "MP4/M4A"
    if head.startswith(_ASF_GUID):
        return "WMA"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "ADTS"  # an AAC frame header
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "MPEG audio"  # a frame header (layer bits set)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG image"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG image"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF image"
    if head.startswith(b"%PDF"):
        return "PDF"
    if head.startswith(b"PK\x03\x04"):
        return "ZIP archive"
    return None


def _not_audio_reason(container: str | None) -> str:
    """Why a file FFmpeg cannot open is refused, after what its first bytes say."""
    if container in _NOT_AUDIO:
        return f"not an audio file ({container})"
    if container and container not in _WEAK_SIGNS:
        return f"truncated or damaged {container}"
    return "not an audio file or unsupported format"


def _damaged_reason(container: str | None, detail: str) -> str:
    named = container and container not in _WEAK_SIGNS and container not in _NOT_AUDIO
    return f"truncated or damaged{' ' + container if named else ''}: {detail}"


def _av_reason(exc: Exception) -> str:
    """A short reason from a PyAV error, without its errno and the file-object repr."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[0].strip().lower() or type(exc).__name__


def _module(name: str, path: str) -> Any:
    """soundfile, soxr or av, imported on first use. FFmpeg's log (PyAV routes it nowhere by
    default) is set quiet explicitly: damaged files make FFmpeg log per broken frame."""
    module = _modules.get(name)
    if module is not None:
        return module
    with _import_lock:
        if name not in _modules:
            try:
                module = importlib.import_module(name)
                if name == "av":
                    av_logging = importlib.import_module("av.logging")
                    if av_logging.get_level() is None:  # unless someone asked for the logs
                        av_logging.set_level(None)
            except ImportError:
                raise MediaError(
                    path, f"audio support is not installed: install {name} to index audio"
                ) from None
            _modules[name] = module
    return _modules[name]


def _clean(samples: np.ndarray) -> np.ndarray:
    """Mono float32, C-contiguous (soxr needs that), with NaN and infinities from damaged float
    files replaced: one NaN would smear across the resampler's whole filter length."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    return np.nan_to_num(samples, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
