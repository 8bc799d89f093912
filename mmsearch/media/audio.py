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

soundfile, soxr and av are imported on first use, so `import mmsearch.media` stays light and works
without them.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from mmsearch.errors import MediaError

log = logging.getLogger(__name__)

_READ_FRAMES = 1 << 16  # decoder frames per chunk: bounded memory even at 384 kHz x 8 channels
_HEAD_BYTES = 64  # enough to tell the containers apart
_MAX_BAD_PACKETS = 200  # undecodable packets in a row before giving up on the rest of a file
_MAX_GAP_SECONDS = 10.0  # silence put in for damaged frames is capped (a broken pts is no gap)
_RAW_STREAM_FORMATS = frozenset({"aac"})  # FFmpeg's name for ADTS: AAC frames with no container
_SF_ERR_SYSTEM = 2  # libsndfile's code for an operating-system error (EIO and the like)

# libsndfile subtypes that name a codec better in FFmpeg's words, the same whichever decoder read
# the file; all other subtypes ("PCM_16", "FLAC", "VORBIS", "OPUS", ...) are kept as they are.
_CODEC_NAMES = {"MPEG_LAYER_I": "mp1", "MPEG_LAYER_II": "mp2", "MPEG_LAYER_III": "mp3"}
_LIBSNDFILE_CONTAINERS = frozenset({"WAV", "W64", "AIFF", "CAF", "FLAC", "Ogg"})
_W64_GUID = bytes.fromhex("726966662e91cf11a5d628db04c10000")  # "riff" plus the rest of its GUID
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")

_import_lock = threading.Lock()
_modules: dict[str, Any] = {}


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


def _clean(samples: np.ndarray) -> np.ndarray:
    """Mono float32, C-contiguous (soxr needs that), with NaN and infinities from damaged float
    files replaced: one NaN would smear across the resampler's whole filter length."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    return np.nan_to_num(samples, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)


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


# --------------------------------------------------------------------------- FFmpeg


def _open_container(fobj: IO[bytes], path: str, container: str | None) -> Any:
    """PyAV's container over the open file object.

    The file object, not the path: FFmpeg would read a name like "a:b.mp3" as a protocol, and
    Python's own open already told permission and existence problems apart."""
    av = _module("av", path)
    try:
        fobj.seek(0)
        # Tags in a broken or legacy encoding must not cost the audio.
        return av.open(fobj, mode="r", metadata_errors="replace")
    except OSError as exc:
        raise _Unreadable(path, _os_reason(exc)) from None
    except MemoryError:
        raise MediaError(path, "not enough memory to open this file") from None
    except Exception as exc:  # noqa: BLE001 - FFmpeg's failures on bad input are not enumerable
        log.debug("FFmpeg cannot open %s: %r", path, exc)
        raise MediaError(path, _not_audio_reason(container)) from None


def _audio_stream(media: Any, path: str, container: str | None) -> Any:
    """The first audio stream, if it has the basics a decoder needs."""
    if not media.streams.audio:
        if container in _NOT_AUDIO:
            raise MediaError(path, f"not an audio file ({container})")
        raise MediaError(path, "no audio stream")
    stream = media.streams.audio[0]
    ctx = stream.codec_context
    if (ctx.sample_rate or 0) <= 0 or (ctx.channels or 0) <= 0:
        # FFmpeg falls back on the file name's extension: text named .flac opens as FLAC.
        raise MediaError(path, _not_audio_reason(container))
    return stream


def _probe_ffmpeg(fobj: IO[bytes], path: str, container: str | None) -> AudioInfo:
    with _open_container(fobj, path, container) as media:
        stream = _audio_stream(media, path, container)
        ctx = stream.codec_context
        sr, channels = int(ctx.sample_rate), int(ctx.channels)
        if media.format.name in _RAW_STREAM_FORMATS:
            # No header with a length: FFmpeg guesses it from the bitrate, 4 % off and worse.
            duration = _packet_seconds(media, stream, path)
        elif stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif media.duration is not None:
            duration = media.duration / 1_000_000  # AV_TIME_BASE: microseconds
        else:
            duration = _packet_seconds(media, stream, path)
        if duration <= 0:
            duration = _packet_seconds(media, stream, path)
        if duration <= 0:
            raise MediaError(path, "empty (0 samples)")
        # "mp3" where the decoder's name is "mp3float": the codec, not the implementation.
        codec = getattr(ctx.codec, "canonical_name", None) or ctx.name
        return AudioInfo(
            duration=duration,
            sample_rate=sr,
            channels=channels,
            codec=str(codec),
            frames=round(duration * sr),
        )


def _packet_seconds(media: Any, stream: Any, path: str) -> float:
    """The length from the packets' durations, for containers whose header has none. Reads the
    file but decodes nothing."""
    total = 0
    try:
        for packet in media.demux(stream):
            total += packet.duration or 0
    except OSError as exc:
        raise _Unreadable(path, _os_reason(exc)) from None
    except Exception as exc:  # noqa: BLE001 - damage: the length up to it is the best there is
        log.debug("demuxing %s failed: %r", path, exc)
    return float(total * stream.time_base) if stream.time_base else 0.0


def _ffmpeg_chunks(
    fobj: IO[bytes],
    path: str,
    container: str | None,
    notes: list[str],
    *,
    skip: float = 0.0,
    announced: float | None = None,
) -> Iterator[tuple[np.ndarray, int]]:
    """Mono chunks at the stream's rate, decoded by FFmpeg packet by packet.

    Args:
        skip: Seconds from the start to decode and drop (what libsndfile already delivered).
        announced: The length the header claims, if known better than FFmpeg knows it.
    """
    with _open_container(fobj, path, container) as media:
        stream = _audio_stream(media, path, container)
        if (
            announced is None
            and stream.duration is not None
            and stream.time_base
            and media.format.name not in _RAW_STREAM_FORMATS  # a guess, not an announcement
        ):
            announced = float(stream.duration * stream.time_base)
        pending: list[np.ndarray] = []
        pending_len = 0
        pending_rate = 0
        position = 0.0  # seconds decoded, including the skipped ones
        emitted = 0  # samples passed on
        to_skip = skip
        damaged = 0
        first_damage = 0.0
        in_a_row = 0
        after_damage = False
        next_time: float | None = None
        stopped: str | None = None
        packets = media.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except OSError as exc:
                raise _Unreadable(path, _os_reason(exc)) from None
            except Exception as exc:  # noqa: BLE001 - the container is damaged from here on
                stopped = _av_reason(exc)
                break
            try:
                frames = stream.decode(packet)
            except OSError as exc:
                raise _Unreadable(path, _os_reason(exc)) from None
            except MemoryError:
                raise MediaError(path, "not enough memory to decode this file") from None
            except Exception as exc:  # noqa: BLE001 - a broken frame: skip it, FFmpeg resyncs
                log.debug("skipping a damaged packet in %s: %r", path, exc)
                if not damaged:
                    first_damage = position
                damaged += 1
                in_a_row += 1
                after_damage = True
                if in_a_row > _MAX_BAD_PACKETS:
                    stopped = "too much undecodable data"
                    break
                continue
            in_a_row = 0
            for frame in frames:
                mono, frame_rate = _frame_mono(frame)
                if frame_rate <= 0 or len(mono) == 0:
                    continue
                start = frame.time
                if after_damage and start is not None and next_time is not None:
                    # Keep later audio at its true time: silence for the frames that were lost.
                    gap = start - next_time
                    if 0.002 < gap <= _MAX_GAP_SECONDS:
                        mono = np.concatenate([np.zeros(round(gap * frame_rate), np.float32), mono])
                after_damage = False
                if start is not None:
                    next_time = start + frame.samples / frame_rate
                if to_skip > 0:
                    drop = min(len(mono), round(to_skip * frame_rate))
                    to_skip -= drop / frame_rate
                    position += drop / frame_rate
                    mono = mono[drop:]
                    if len(mono) == 0:
                        continue
                if pending and frame_rate != pending_rate:
                    yield _clean(np.concatenate(pending)), pending_rate
                    pending, pending_len = [], 0
                pending.append(mono)
                pending_len += len(mono)
                pending_rate = frame_rate
                position += len(mono) / frame_rate
                emitted += len(mono)
                if pending_len >= _READ_FRAMES:
                    yield _clean(np.concatenate(pending)), pending_rate
                    pending, pending_len = [], 0
        if pending:
            yield _clean(np.concatenate(pending)), pending_rate
    if emitted == 0:
        if skip > 0:  # libsndfile delivered the start; FFmpeg could add nothing
            raise MediaError(path, "nothing decodable after the damage")
        if damaged or stopped:
            raise MediaError(path, _damaged_reason(container, "no audio could be decoded"))
        raise MediaError(path, "empty (0 samples)")
    # The header promised more than there was: a cut-short copy or download.
    short = announced is not None and position < 0.9 * announced and announced - position > 1.0
    # Damage only at the very end is the cut itself, said once by the note on where it stops.
    if damaged and not ((stopped or short) and first_damage >= position - 1.0):
        notes.append(f"skipped {damaged} damaged packet(s), the first at {first_damage:.1f} s")
    if stopped:
        notes.append(f"decoding stopped at {position:.1f} s: {stopped}")
    elif short:
        notes.append(
            f"decoding stopped at {position:.1f} s of {announced:.1f} s: file truncated or damaged"
        )


_SAMPLE_SCALES = {"s16": 1 / 32768, "s32": 1 / 2**31, "s64": 1 / 2**63}


def _frame_mono(frame: Any) -> tuple[np.ndarray, int]:
    """A decoded PyAV frame as mono float32 samples and its rate."""
    data = frame.to_ndarray()
    kind = frame.format.name.removesuffix("p")  # "fltp" -> "flt", "s16p" -> "s16"
    if kind == "u8":
        data = (data.astype(np.float32) - 128.0) / 128.0
    elif kind in _SAMPLE_SCALES:
        data = data.astype(np.float32) * np.float32(_SAMPLE_SCALES[kind])
    if frame.format.is_planar:
        mono = data.mean(axis=0) if data.shape[0] > 1 else data[0]
    else:
        channels = frame.layout.nb_channels or 1
        mono = data.reshape(-1, channels).mean(axis=1) if channels > 1 else data.reshape(-1)
    return mono.astype(np.float32, copy=False), int(frame.sample_rate or 0)


# --------------------------------------------------------------------------- files and reasons


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
