"""The FFmpeg decoder (through PyAV): MP3, M4A/AAC, WMA and whatever libsndfile refuses; it
resynchronises past broken frames, so damaged files give what can be read."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from mmsearch.errors import MediaError
from mmsearch.media.audio_files import (
    _NOT_AUDIO,
    _READ_FRAMES,
    AudioInfo,
    _av_reason,
    _clean,
    _damaged_reason,
    _module,
    _not_audio_reason,
    _os_reason,
    _Unreadable,
)

log = logging.getLogger(__name__)

_MAX_BAD_PACKETS = 200  # undecodable packets in a row before giving up on the rest of a file
_MAX_GAP_SECONDS = 10.0  # silence put in for damaged frames is capped (a broken pts is no gap)
_RAW_STREAM_FORMATS = frozenset({"aac"})  # FFmpeg's name for ADTS: AAC frames with no container


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
