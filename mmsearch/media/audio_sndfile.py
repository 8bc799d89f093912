"""The libsndfile decoder (through soundfile): the formats it owns, exact and cheap to probe;
what it gives up on mid-way goes on in FFmpeg (`audio_ffmpeg`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from mmsearch.errors import MediaError
from mmsearch.media.audio_ffmpeg import _ffmpeg_chunks
from mmsearch.media.audio_files import _READ_FRAMES, _clean, _module, _Unreadable

log = logging.getLogger(__name__)

_SF_ERR_SYSTEM = 2  # libsndfile's code for an operating-system error (EIO and the like)


# libsndfile subtypes that name a codec better in FFmpeg's words, the same whichever decoder read
# the file; all other subtypes ("PCM_16", "FLAC", "VORBIS", "OPUS", ...) are kept as they are.
_CODEC_NAMES = {"MPEG_LAYER_I": "mp1", "MPEG_LAYER_II": "mp2", "MPEG_LAYER_III": "mp3"}


# --------------------------------------------------------------------------- libsndfile


def _libsndfile_chunks(
    fobj: IO[bytes], path: str, container: str | None, notes: list[str]
) -> Iterator[tuple[np.ndarray, int]]:
    """Mono chunks at the file's own rate, read by libsndfile; FFmpeg takes over on failure."""
    sf = _module("soundfile", path)
    try:
        snd = sf.SoundFile(path)
    except sf.LibsndfileError as exc:
        log.debug("libsndfile cannot open %s (%s), trying FFmpeg", path, exc)
        yield from _ffmpeg_chunks(fobj, path, container, notes)
        return
    with snd:
        sr, channels, frames = int(snd.samplerate), int(snd.channels), int(snd.frames)
        if frames <= 0:
            raise MediaError(path, "empty (0 samples)")
        if sr <= 0 or channels <= 0:
            raise MediaError(path, f"truncated or damaged {container} header")
        _note_short_wav(snd, sr, frames, notes)
        done = 0
        while True:
            try:
                block = snd.read(_READ_FRAMES, dtype="float32", always_2d=True)
            except sf.LibsndfileError as exc:
                if exc.code == _SF_ERR_SYSTEM:
                    raise _Unreadable(path, f"cannot read: {_sf_reason(exc)}") from None
                failure = _sf_reason(exc)
                break
            except MemoryError:
                raise MediaError(path, "not enough memory to decode this file") from None
            if len(block) == 0:
                if done >= frames:
                    return
                # Short of the length in the header: Ogg pages lost to damage end libsndfile's
                # Vorbis without an error.
                failure = "file truncated or damaged"
                break
            done += len(block)
            yield _clean(block[:, 0] if channels == 1 else block.mean(axis=1)), sr
    # libsndfile gave up on damage (a FLAC "lost sync"). The chunk that failed is lost with
    # the exception, so FFmpeg decodes the file again from the start, drops what libsndfile
    # already delivered, and carries on past the damage where it can. A file that is merely
    # cut short costs a second decode of what libsndfile read: damage is rare, keep it simple.
    notes.append(f"damaged data after {done / sr:.1f} s ({failure}); decoding went on with FFmpeg")
    index = len(notes) - 1
    try:
        yield from _ffmpeg_chunks(
            fobj, path, container, notes, skip=done / sr, announced=frames / sr
        )
    except MediaError as exc:
        if isinstance(exc, _Unreadable) or done == 0:
            raise
        # FFmpeg could add nothing (or does not read this format): keep libsndfile's part.
        log.debug("FFmpeg cannot continue %s: %s", path, exc.reason)
        notes[index] = f"decoding stopped at {done / sr:.1f} s of {frames / sr:.1f} s: {failure}"


def _note_short_wav(snd: Any, sr: int, frames: int, notes: list[str]) -> None:
    """Note a WAV whose data chunk is shorter than its header says (a copy cut short).

    libsndfile reads such files silently up to their end; its log has the two sizes. Sizes of
    0 and 0xFFFFFFFF are placeholders that recorders write while recording, not truncation."""
    found = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", snd.extra_info, re.MULTILINE)
    if not found:
        return
    announced, actual = int(found.group(1)), int(found.group(2))
    if 0 < actual < announced < 0xFFFFFFFF:
        notes.append(
            f"file truncated: the header announces {frames / sr * announced / actual:.1f} s,"
            f" the file holds {frames / sr:.1f} s"
        )


def _sf_codec(container: str, subtype: str) -> str:
    """The codec libsndfile reads: for FLAC its subtype is only the bit depth ("PCM_16")."""
    if container == "FLAC":
        return "FLAC"
    return _CODEC_NAMES.get(subtype, subtype)


def _sf_reason(exc: Exception) -> str:
    """libsndfile's own message, without the "Error opening 'path':" prefix soundfile adds."""
    text = str(getattr(exc, "error_string", "") or exc).strip()
    return text.removeprefix("Error :").strip().rstrip(".") or "libsndfile error"
