"""Video files: their facts from the container, and the frames worth searching, streamed.

A film is searched like a long recording: by windows with a time range. Its picture windows are
keyframes, one per shot (a cheap scene-change signal on tiny colour frames) and at least one every
`every` seconds within a long shot; black, featureless and repeated frames are left out (a
repeat extends the window of the frame it repeats). Its sound goes through the audio path
(`mmsearch.media.audio.read_audio` reads the soundtrack of any container FFmpeg opens).

Decoding never holds the film: frames stream from PyAV and only the few chosen ones are
converted to RGB at the size the model needs. Non-reference frames (H.264/HEVC B-frames) are not
decoded at all (`skip_frame = "NONREF"`): about twice the decoding speed, and the scene signal
sampled every `sample` seconds does not need them. No torch and no models here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from PIL import Image

from mmsearch.errors import MediaError
from mmsearch.media.audio_files import _av_reason, _module

log = logging.getLogger(__name__)

_LOOK_SIZE = (48, 27)
"""The small colour frame the scene signal and the frame checks look at (16:9; others squash).
Colour, not grey: a cut from a red scene to a blue one of the same brightness is a cut."""
_MAX_BAD_PACKETS = 100
"""Undecodable packets in a row before the rest of a damaged file is given up."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video's container says: picture size as shown (after rotation), length, rates."""

    duration: float
    width: int | None
    height: int | None
    frame_rate: float | None
    video_codec: str | None
    audio_codec: str | None
    rotation: int
    """Degrees the picture is turned clockwise for display (phones store portrait video as
    landscape pixels plus this), as FFmpeg's players apply it."""
    created: str | None
    """The container's creation time (ISO 8601), which phones and cameras write."""
    sample_rate: int | None = None
    channels: int | None = None

    @property
    def has_picture(self) -> bool:
        return self.video_codec is not None

    @property
    def has_sound(self) -> bool:
        return self.audio_codec is not None

    @property
    def codec(self) -> str:
        """One line for the catalog: "h264 + aac", "h264", "aac"."""
        return " + ".join(c for c in (self.video_codec, self.audio_codec) if c)


@dataclass(frozen=True)
class FrameChoice:
    """How keyframes are chosen (the defaults were measured: see ARCHITECTURE.md, Video)."""

    every: float = 10.0
    """At most this many seconds between two keyframes of one long shot."""
    sample: float = 0.25
    """Seconds between two looks at the picture for the scene signal."""
    scene: float = 0.10
    """Mean colour change (0-1) between two looks that counts as a new shot."""
    repeat: float = 0.025
    """A candidate this close to the last keyframe (mean change) repeats it and is left out."""
    settle: float = 0.5
    """After a cut, the sharpest look within this many seconds is kept (cuts blur and fade)."""


@dataclass(frozen=True)
class Keyframe:
    """A chosen frame: where it starts, and its picture at the size asked for."""

    time: float
    image: Image.Image


def _open(path: str) -> Any:
    av = _module("av", path)
    try:
        return av.open(path, mode="r", metadata_errors="replace")
    except FileNotFoundError:
        raise MediaError(path, "the file vanished") from None
    except PermissionError:
        raise MediaError(path, "permission denied") from None
    except Exception as exc:  # noqa: BLE001 - FFmpeg's failures on bad input are not enumerable
        log.debug("FFmpeg cannot open %s: %r", path, exc)
        raise MediaError(path, _unopenable_reason(path, exc)) from None


def _unopenable_reason(path: str, exc: Exception) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        head = b""
    if not head:
        return "empty (0 bytes)"
    if head[4:8] == b"ftyp":
        # MP4/MOV written by a camera keep their index (the moov box) at the end: a recording
        # cut off (battery, full card, a copy stopped half-way) has none, and FFmpeg cannot
        # find a single frame without it.
        return (
            "a truncated or damaged MP4/MOV: its index (moov box) is missing, as when a "
            "recording or a copy was cut off; copy it again, or repair it with a tool such as "
            "untrunc"
        )
    return f"not a video FFmpeg can read ({_av_reason(exc)})"


def _rotation(stream: Any) -> int:
    """The display rotation in degrees (0, 90, 180, 270), from the stream's display matrix."""
    tag = stream.metadata.get("rotate")  # older muxers wrote a tag
    if tag:
        try:
            return int(float(tag)) % 360
        except ValueError:
            return 0
    for data in getattr(stream, "side_data", None) or ():
        rotation = getattr(data, "rotation", None)
        if rotation is not None:
            return round(-float(rotation)) % 360
    return 0


def _frame_rotation(frame: Any) -> int:
    """Clockwise display degrees of a decoded frame (PyAV gives FFmpeg's counter-clockwise)."""
    return round(-float(frame.rotation or 0)) % 360


def _created(metadata: dict[str, str]) -> str | None:
    stamp = metadata.get("creation_time") or metadata.get("date")
    if not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp.strip())
    except ValueError:
        return None
    if when.year < 1971:  # cameras that do not know the time write 1904 or 1970
        return None
    return when.replace(microsecond=0).isoformat()


def probe_video(path: str) -> VideoInfo:
    """Read a video's container: length, picture size, frame rate, codecs, rotation, date.

    Raises:
        MediaError: Unreadable, not a video, or neither a picture nor a sound stream.
    """
    with _open(path) as media:
        picture = media.streams.video[0] if media.streams.video else None
        sound = media.streams.audio[0] if media.streams.audio else None
        if picture is None and sound is None:
            raise MediaError(path, "no picture or sound stream in this file")
        duration = _duration(media, picture or sound)
        width = height = None
        rate = None
        rotation = 0
        if picture is not None:
            ctx = picture.codec_context
            width, height = ctx.width or None, ctx.height or None
            rotation = _first_frame_rotation(media, picture) if width else 0
            if rotation in (90, 270) and width and height:
                width, height = height, width
            guessed = picture.average_rate or picture.guessed_rate
            rate = round(float(guessed), 3) if guessed else None
        return VideoInfo(
            duration=duration,
            width=width,
            height=height,
            frame_rate=rate,
            video_codec=picture.codec_context.name if picture is not None else None,
            audio_codec=sound.codec_context.name if sound is not None else None,
            rotation=rotation,
            created=_created(dict(media.metadata)),
            sample_rate=(sound.codec_context.sample_rate or None) if sound is not None else None,
            channels=(sound.codec_context.channels or None) if sound is not None else None,
        )


def _duration(media: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
        if seconds > 0:
            return seconds
    if media.duration:
        return float(media.duration) / 1_000_000  # AV_TIME_BASE
    return 0.0


def _first_frame_rotation(media: Any, stream: Any) -> int:
    """Rotation as FFmpeg reports it on decoded frames (the display matrix side data)."""
    try:
        for frame in media.decode(stream):
            return _frame_rotation(frame) if frame.rotation else _rotation(stream)
    except Exception:  # noqa: BLE001 - a damaged first frame: the container's tag, if any
        return _rotation(stream)
    return _rotation(stream)


def _look(frame: Any) -> np.ndarray:
    """The frame as a tiny RGB array in 0-1 (what the scene signal compares)."""
    small = frame.reformat(width=_LOOK_SIZE[0], height=_LOOK_SIZE[1], format="rgb24").to_ndarray()
    return small[:, : _LOOK_SIZE[0]].astype(np.float32) / 255.0


def _sharpness(look: np.ndarray) -> float:
    """Mean gradient of the brightness: near 0 for black, flat and badly blurred frames."""
    grey = look.mean(axis=2)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


def _is_blank(look: np.ndarray) -> bool:
    """Black (a fade, a lens cap) or one flat colour: nothing a search could find."""
    grey = look.mean(axis=2)
    spread = float(grey.std())
    return bool(grey.mean() < 0.06 and spread < 0.03) or spread < 0.01


_BAR_LEVEL = 28
"""Brightest value (0-255) a pixel of a black bar has (codec noise lifts black above 0)."""


def trim_bars(image: Image.Image) -> Image.Image:
    """The picture without black bars along its edges (letterbox, pillarbox, a portrait clip
    shown in a landscape frame): the models crop a square from the middle, and bars inside it
    change what they see (cosine 0.94 to the photo alone, measured on coco_mini)."""
    pixels = np.asarray(image.convert("L"))
    lit = pixels > _BAR_LEVEL
    cols = np.flatnonzero(lit.mean(axis=0) > 0.02)
    rows = np.flatnonzero(lit.mean(axis=1) > 0.02)
    if len(cols) == 0 or len(rows) == 0:
        return image
    left, right, top, bottom = int(cols[0]), int(cols[-1]) + 1, int(rows[0]), int(rows[-1]) + 1
    if (right - left) * (bottom - top) < 0.25 * image.width * image.height:
        return image  # mostly dark: a night scene, not bars
    if (left, top, right, bottom) == (0, 0, image.width, image.height):
        return image
    return image.crop((left, top, right, bottom))


def _picture(frame: Any, side: int | None, rotation: int) -> Image.Image:
    """The frame as RGB without black bars, its shorter side reduced towards `side` but not
    below it (None: full size), turned upright."""
    image = _sized(frame, side)
    if rotation:
        # PIL turns counter-clockwise; the display rotation is clockwise.
        image = image.rotate(-rotation, expand=True)
    return image


def _sized(frame: Any, side: int | None) -> Image.Image:
    """Bars come off at full size first, so what is left keeps `side` pixels for the model.

    The frame shrinks as a photo is decoded (`media.images.decode_image`'s `min_side`): by a
    whole factor, a box filter, to no less than `side`; the model's own resize (bicubic) does
    the rest, once. Resized to `side` here with a bilinear filter and then again by the model,
    keyframes lost detail the photos they show keep: fit-half caption R@1 0.400 against 0.450
    for the same keyframes given whole (`scripts/eval_video.py`'s videos, saved as photos)."""
    image = trim_bars(frame.to_image())
    if side is not None and side > 0:
        factor = min(image.size) // side
        if factor >= 2:
            image = image.reduce(factor)
    return image


def keyframes(
    path: str, choice: FrameChoice = FrameChoice(), side: int | None = None, *,
    start: float = 0.0, part: float | None = None,
) -> Iterator[Keyframe]:
    """The frames of a video worth searching, in order, as they are decoded.

    One per shot (the sharpest look within `choice.settle` seconds after the cut) and one at
    least every `choice.every` seconds within a shot, except blank frames and repeats of the
    last keyframe. A file damaged part-way gives the frames before the damage.

    Args:
        start: Seconds into the film to begin at (a run going on where an interrupted one
            stopped): decoding seeks to the keyframe before it, and frames before it are dropped.
        part: The choice starts afresh at every multiple of `part` seconds (`part_end`), as for
            a film committed in parts: a run that begins at a part's start then chooses exactly
            what an uninterrupted run chose there.

    Raises:
        MediaError: Not readable as video, or no picture stream.
    """
    media = _open(path)
    try:
        if not media.streams.video:
            raise MediaError(path, "no picture stream")
        stream = media.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            stream.codec_context.skip_frame = "NONREF"
        except Exception:  # noqa: BLE001 - a decoder without the option decodes every frame
            log.debug("cannot skip non-reference frames of %s", path)
        origin = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        if start > 0:
            frames = _frames_from(media, stream, path, start + origin)
        else:
            frames = _frames(media, stream, path)
        yield from _choose(frames, choice, side, origin, begin=start, part=part)
    finally:
        media.close()


def part_end(at: float, part: float) -> float:
    """Where the part of a film holding second `at` ends: parts of `part` seconds from 0, the
    same numbers in every run (a resumed run begins exactly where an earlier one's part ended)."""
    return part * (math.floor(at / part + 1e-6) + 1)


def _frames_from(media: Any, stream: Any, path: str, seconds: float) -> Iterator[Any]:
    """Decoded frames from the keyframe at or before `seconds` (stream time): a seek, then
    decoding on from there (the caller drops the frames before the mark). A container that
    cannot seek, or lands past the mark (which would lose frames), is decoded from its start."""
    try:
        media.seek(int(seconds / stream.time_base), stream=stream, backward=True)
    except Exception:  # noqa: BLE001 - unseekable: the frames before are decoded and dropped
        log.debug("cannot seek in %s", path)
    frames = _frames(media, stream, path)
    first = next(frames, None)
    if first is not None and first.time is not None and float(first.time) > seconds + 1e-3:
        log.debug("seeking in %s landed past %.2f s; decoding from the start", path, seconds)
        try:
            media.seek(stream.start_time or 0, stream=stream, backward=True)
        except Exception:  # noqa: BLE001 - then what the seek gave is all there is
            log.debug("cannot seek back to the start of %s", path)
        else:
            first, frames = None, _frames(media, stream, path)
    if first is not None:
        yield first
    yield from frames


def _frames(media: Any, stream: Any, path: str) -> Iterator[Any]:
    """Decoded frames; past damage, FFmpeg resynchronises on the next good packet."""
    bad = 0
    for packet in media.demux(stream):
        try:
            frames = packet.decode()
        except Exception as exc:  # noqa: BLE001 - damaged packets are not enumerable
            bad += 1
            if bad >= _MAX_BAD_PACKETS:
                log.info("%s: giving up after %d damaged packets (%s)", path, bad, _av_reason(exc))
                return
            continue
        bad = 0
        yield from frames


def _choose(
    frames: Iterator[Any], choice: FrameChoice, side: int | None, origin: float, *,
    begin: float = 0.0, part: float | None = None,
) -> Iterator[Keyframe]:
    """Keyframes from `begin` on; with `part`, chosen afresh in each part (`part_end`)."""
    boundary = part_end(begin, part) if part else math.inf
    last_look: np.ndarray | None = None
    last_look_at = -1e9
    kept: np.ndarray | None = None
    kept_at = -1e9
    rotation: int | None = None
    # A candidate window: looks within `settle` seconds of a trigger; the sharpest is kept.
    window_end: float | None = None
    best: tuple[float, float, Any, np.ndarray] | None = None  # (sharpness, time, frame, look)

    def finish() -> Keyframe | None:
        nonlocal kept, kept_at, best, window_end
        chosen, best, window_end = best, None, None
        if chosen is None:
            return None
        _, at, frame, look = chosen
        if kept is not None and float(np.abs(look - kept).mean()) < choice.repeat:
            return None  # the same picture again: the last keyframe's window covers it
        kept, kept_at = look, at
        return Keyframe(at, _picture(frame, side, rotation or 0))

    for frame in frames:
        if frame.time is None:
            continue
        at = max(0.0, float(frame.time) - origin)
        if at < begin - 1e-6:
            continue  # decoded from the keyframe before `begin`: not this run's to choose
        if at >= boundary - 1e-6:
            made = finish()
            if made is not None:
                yield made
            kept, kept_at, last_look, last_look_at = None, -1e9, None, -1e9
            boundary = part_end(at, part) if part else math.inf
        if at - last_look_at < choice.sample and window_end is None:
            continue
        if rotation is None:
            rotation = _frame_rotation(frame)
        look = _look(frame)
        cut = last_look is None or float(np.abs(look - last_look).mean()) > choice.scene
        last_look, last_look_at = look, at
        if window_end is not None and (at > window_end or cut):
            made = finish()
            if made is not None:
                yield made
        if window_end is None and (cut or at - kept_at >= choice.every):
            window_end = at + choice.settle
        if window_end is not None and not _is_blank(look):
            sharp = _sharpness(look)
            if best is None or sharp > best[0] * 1.15:  # a clearly sharper look wins, not noise
                best = (sharp, at, frame, look)
    made = finish()
    if made is not None:
        yield made


def frame_at(path: str, seconds: float, side: int | None = None) -> Image.Image:
    """The picture at `seconds` into a video (for thumbnails of a hit's moment).

    Raises:
        MediaError: Not readable, no picture, or nothing decodable at or after that time.
    """
    with _open(path) as media:
        if not media.streams.video:
            raise MediaError(path, "no picture stream")
        stream = media.streams.video[0]
        stream.thread_type = "AUTO"
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        target = max(0.0, seconds)
        try:
            media.seek(int((target + start) / stream.time_base), stream=stream, backward=True)
        except Exception:  # noqa: BLE001 - unseekable: decode from the start
            log.debug("cannot seek in %s", path)
        chosen = None
        for frame in _frames(media, stream, path):
            if frame.time is None:
                continue
            chosen = frame
            if float(frame.time) - start >= target - 1e-3:
                break
        if chosen is None:
            raise MediaError(path, f"no picture could be decoded at {seconds:.1f} s")
        rotation = _frame_rotation(chosen)
        return _picture(chosen, side, rotation)
