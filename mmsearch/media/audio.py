"""Audio files: probing their format and length, and decoding them as a stream of mono blocks.

This module owns the choice of decoder and everything between the file and the samples the audio
encoders see: container sniffing, decoding, downmixing to mono, resampling, and turning every
decoder failure into a `MediaError` with a short reason. No torch and no models here.

Two decoders share the work. libsndfile (through soundfile) reads the formats it owns, sniffed
from the first bytes: WAV/RF64/W64, AIFF/AIFC, CAF, FLAC and Ogg (Vorbis, Opus); it is exact and
cheap to probe. FFmpeg (through PyAV) reads everything else (MP3, M4A/AAC, WMA, ...), the files
libsndfile refuses, and the rest of a file after libsndfile gave up mid-way on damage, because
FFmpeg resynchronises past broken frames where libsndfile stops. MP3 deliberately goes to FFmpeg
although libsndfile 1.1+ reads it: libmpg123 inside libsndfile prints to stderr on broken files
and gives up at the first bad frame.

The decoders live in `audio_sndfile` and `audio_ffmpeg`, what both need in `audio_files`.
soundfile, soxr and av are imported on first use, so `import mmsearch.media` stays light and works
without them.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from typing import Any

import numpy as np

from mmsearch.errors import MediaError
from mmsearch.media.audio_ffmpeg import _ffmpeg_chunks, _probe_ffmpeg
from mmsearch.media.audio_files import AudioInfo, _module, _open, _read_head, _sniff
from mmsearch.media.audio_sndfile import _libsndfile_chunks, _sf_codec

log = logging.getLogger(__name__)

_LIBSNDFILE_CONTAINERS = frozenset({"WAV", "W64", "AIFF", "CAF", "FLAC", "Ogg"})


def probe_audio(path: str) -> AudioInfo:
    """Read an audio file's header: its length, sample rate, channels and codec.

    Cheap: nothing is decoded. libsndfile's numbers are exact; FFmpeg's come from the container
    and can be an estimate (an MP3 without a Xing/LAME header, a raw AAC stream).

    Args:
        path: The file.

    Returns:
        The file's format and length.

    Raises:
        MediaError: Unreadable, not audio, no audio stream, empty, damaged, or an audio format
            no installed decoder reads.
    """
    with _open(path) as fobj:
        head = _read_head(fobj, path)
        container = _sniff(head)
        if container in _LIBSNDFILE_CONTAINERS:
            sf = _module("soundfile", path)
            try:
                info = sf.info(path)
            except sf.LibsndfileError as exc:
                # FFmpeg may still read it (a WAV holding MP3 or ADPCM, FLAC in Ogg). If the
                # file vanished since it was opened, FFmpeg reads it from the open handle.
                log.debug("libsndfile cannot open %s (%s), trying FFmpeg", path, exc)
            else:
                if info.frames <= 0:
                    raise MediaError(path, "empty (0 samples)")
                if info.samplerate <= 0 or info.channels <= 0:
                    raise MediaError(path, f"truncated or damaged {container} header")
                return AudioInfo(
                    duration=info.frames / info.samplerate,
                    sample_rate=int(info.samplerate),
                    channels=int(info.channels),
                    codec=_sf_codec(info.format, info.subtype),
                    frames=int(info.frames),
                )
        return _probe_ffmpeg(fobj, path, container)


def read_audio(
    path: str,
    *,
    rate: int = 16000,
    block_seconds: float = 30.0,
    max_seconds: float | None = None,
    problems: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Stream an audio file as consecutive mono float32 blocks at `rate` Hz.

    The file is decoded chunk by chunk, never whole: memory stays bounded for multi-hour
    recordings. Channels are averaged to mono and the signal is resampled with soxr's streaming
    high-quality resampler. Every block holds `block_seconds * rate` samples except the last,
    which may be shorter; concatenated they are the whole resampled signal (at least one sample
    for any non-empty file).

    Damage is survived where the decoder allows: broken frames are skipped (replaced by silence
    of their length where the timestamps tell it) and a truncated file yields what it holds.
    Each such event appends a short note to `problems`, e.g. "decoding stopped at 12.3 s of
    60.0 s: file truncated or damaged".

    Nothing is opened until iteration starts, so every error below is raised by the iterator.

    Args:
        path: The file.
        rate: The output sample rate in Hz.
        block_seconds: The length of the yielded blocks in seconds.
        max_seconds: If given, stop after this much audio (the first `max_seconds` only).
        problems: If given, notes on damage that was survived are appended to it.

    Yields:
        1-D float32 arrays of samples, nominally in [-1, 1].

    Raises:
        ValueError: `rate`, `block_seconds` or `max_seconds` is not positive.
        MediaError: The file cannot be read (also when it becomes unreadable midway), is not
            audio, is empty, or nothing in it could be decoded.
    """
    if rate <= 0 or block_seconds <= 0 or (max_seconds is not None and max_seconds <= 0):
        raise ValueError("rate, block_seconds and max_seconds must be positive")
    block_len = max(1, round(block_seconds * rate))
    limit = None if max_seconds is None else max(1, round(max_seconds * rate))
    notes = problems if problems is not None else []
    return _stream(path, rate, block_len, limit, notes)


def decode_audio(
    path: str,
    *,
    rate: int = 16000,
    max_seconds: float | None = None,
    problems: list[str] | None = None,
) -> tuple[np.ndarray, AudioInfo]:
    """Decode a whole (short) audio file at once, e.g. an example clip given with a query.

    Args:
        path: The file.
        rate: The output sample rate in Hz.
        max_seconds: If given, only the first `max_seconds` are decoded: set it for files of
            unknown length, as the whole signal is held in memory.
        problems: If given, notes on damage that was survived are appended to it.

    Returns:
        The mono float32 signal at `rate` Hz, and the file's header information.

    Raises:
        MediaError: As `probe_audio` and `read_audio`.
    """
    info = probe_audio(path)
    # One block for the whole clip: no copying from many blocks into one when the length is known.
    seconds = info.duration if max_seconds is None else min(info.duration, max_seconds)
    blocks = list(
        read_audio(
            path,
            rate=rate,
            block_seconds=max(1.0, seconds + 1.0),
            max_seconds=max_seconds,
            problems=problems,
        )
    )
    signal = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    return signal, info




# --------------------------------------------------------------------------- the pipeline


def _stream(
    path: str, rate: int, block_len: int, limit: int | None, notes: list[str]
) -> Iterator[np.ndarray]:
    """The generator behind `read_audio`: decoded chunks in, resampled fixed-size blocks out."""
    soxr = _module("soxr", path)
    with _open(path) as fobj:
        head = _read_head(fobj, path)
        container = _sniff(head)
        if container in _LIBSNDFILE_CONTAINERS:
            source = _libsndfile_chunks(fobj, path, container, notes)
        else:
            source = _ffmpeg_chunks(fobj, path, container, notes)
        pending: list[np.ndarray] = []
        pending_len = 0
        produced = 0
        resampler: _Resampler | None = None
        try:
            for chunk, chunk_rate in source:
                outputs = []
                if resampler is None or resampler.in_rate != chunk_rate:
                    if resampler is not None:  # the rate changed midway (concatenated MP3s)
                        outputs.append(resampler.finish())
                    resampler = _Resampler(soxr, chunk_rate, rate)
                outputs.append(resampler.feed(chunk))
                for out in outputs:
                    if limit is not None and produced + len(out) >= limit:
                        out = out[: limit - produced]
                        pending.append(out)
                        pending_len += len(out)
                        yield from _split(pending, pending_len, block_len, final=True)
                        return
                    produced += len(out)
                    pending.append(out)
                    pending_len += len(out)
                if pending_len >= block_len:
                    rest = yield from _split(pending, pending_len, block_len, final=False)
                    pending, pending_len = [rest], len(rest)
            if resampler is not None:
                out = resampler.finish()
                if limit is not None:
                    out = out[: limit - produced]
                produced += len(out)
                pending.append(out)
                pending_len += len(out)
            if produced == 0:
                # The sources raise for empty and undecodable files; this is a safety net.
                raise MediaError(path, "no audio could be decoded")
            yield from _split(pending, pending_len, block_len, final=True)
        finally:
            source.close()


def _split(
    pending: list[np.ndarray], total: int, block_len: int, *, final: bool
) -> Generator[np.ndarray, None, np.ndarray]:
    """Yield full blocks of `block_len` from `pending` (and the tail if `final`); return the rest."""
    joined = pending[0] if len(pending) == 1 else np.concatenate(pending)
    start = 0
    while total - start >= block_len:
        yield joined[start : start + block_len]
        start += block_len
    rest = joined[start:]
    if final and len(rest):
        yield rest
        rest = joined[:0]
    return rest


class _Resampler:
    """soxr's streaming resampler for one stretch of constant input rate."""

    def __init__(self, soxr: Any, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
        )
        self._fed = 0
        self._out = 0
        self._last = np.zeros(1, np.float32)

    def feed(self, chunk: np.ndarray) -> np.ndarray:
        if len(chunk) == 0:
            return chunk
        self._fed += len(chunk)
        self._last = chunk[-1:].copy()
        out = chunk if self._stream is None else self._stream.resample_chunk(chunk, last=False)
        self._out += len(out)
        return out

    def finish(self) -> np.ndarray:
        """Flush the filter's tail. A single input sample still gives one output sample: soxr
        rounds a 1-sample file at 44.1 kHz down to nothing, which would look like no audio."""
        if self._stream is None:
            return np.zeros(0, np.float32)
        out = self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
        if self._out + len(out) == 0 and self._fed > 0:
            out = self._last.copy()
        self._out += len(out)
        return out
