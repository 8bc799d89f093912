"""Making test videos with PyAV (no ffmpeg command here): photos as shots with a slow zoom and
drift and sensor-like noise, a soundtrack muxed from samples. Used by the video evaluation, the
video benchmark and the tests; the photos and sounds come from ../shared/data or the samples,
never from the repository."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image


def _shot_frames(
    image: Image.Image, seconds: float, size: tuple[int, int], fps: int, noise: int,
    rng: np.random.Generator, zoom: float = 1.15,
) -> Iterator[np.ndarray]:
    """The whole photo fitted into the frame (bars where the shapes differ), zooming slowly
    to `zoom` while it drifts sideways: a camera move that keeps what a caption describes."""
    width, height = size
    fit = min(width / image.width, height / image.height)
    rgb = image.convert("RGB")
    count = max(1, round(seconds * fps))
    for i in range(count):
        progress = i / count
        scale = fit * (1.0 + (zoom - 1.0) * progress)
        shown = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.BILINEAR)
        canvas = Image.new("RGB", size)
        drift = round((shown.width - width) * (0.5 - 0.3 * progress)) if shown.width > width else 0
        x = (width - shown.width) // 2 + drift if shown.width <= width else -drift
        canvas.paste(shown, (x, (height - shown.height) // 2))
        pixels = np.asarray(canvas, dtype=np.int16)
        if noise:
            pixels = pixels + rng.integers(-noise, noise + 1, (height, width, 1), dtype=np.int16)
        yield np.clip(pixels, 0, 255).astype(np.uint8)


def _mux_sound(out: Any, stream: Any, sound: np.ndarray, rate: int) -> None:
    samples = np.asarray(sound, np.float32)
    for start in range(0, len(samples), 1024):
        frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def write_video(
    path: str | Path,
    shots: Sequence[tuple[Image.Image | None, float]],
    *,
    size: tuple[int, int] = (640, 360),
    fps: int = 25,
    sound: np.ndarray | None = None,
    rate: int = 16_000,
    rotation: int = 0,
    noise: int = 6,
    seed: int = 0,
    preset: str = "veryfast",
    zoom: float = 1.15,
    faststart: bool = False,
) -> Path:
    """An H.264 (+ AAC when `sound` is given) MP4 of `shots`: (photo, seconds) each, None for
    black. `rotation` stores a display rotation as phones do (the pixels stay landscape); each shot
zooms to `zoom` (1: a still camera); `faststart` puts the MP4 index first, as web encoders do."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        video = None
        if shots:  # no shots: a container with only sound
            video = out.add_stream("libx264", rate=fps)
            video.width, video.height = size
            video.pix_fmt = "yuv420p"
            video.options = {"preset": preset, "crf": "26"}
            if rotation:
                video.set_display_rotation(rotation)
        audio = None
        if sound is not None:
            audio = out.add_stream("aac", rate=rate)
            audio.layout = "mono"
        for image, seconds in shots if video is not None else ():
            assert video is not None
            if image is None:
                frames = (np.zeros((size[1], size[0], 3), np.uint8) for _ in range(round(seconds * fps)))
            else:
                frames = _shot_frames(image, seconds, size, fps, noise, rng, zoom)
            for pixels in frames:
                for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                    out.mux(packet)
        for packet in video.encode() if video is not None else ():
            out.mux(packet)
        if audio is not None and sound is not None:
            _mux_sound(out, audio, sound, rate)
    return path


def soundtrack(parts: Sequence[tuple[np.ndarray | None, float]], rate: int = 16_000) -> np.ndarray:
    """Consecutive parts, each padded with quiet noise or cut to its seconds (None: quiet)."""
    rng = np.random.default_rng(1)
    out = []
    for samples, seconds in parts:
        length = round(seconds * rate)
        part = (rng.standard_normal(length) * 0.002).astype(np.float32)
        if samples is not None:
            take = np.asarray(samples, np.float32)[:length]
            part[: len(take)] += take
        out.append(part)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def write_long_video(
    path: str | Path,
    photos: Sequence[Image.Image],
    seconds: float,
    *,
    shot: float = 5.0,
    size: tuple[int, int] = (1280, 720),
    fps: int = 25,
    sound: np.ndarray | None = None,
    rate: int = 16_000,
) -> Path:
    """A long film quickly: each photo's shot is rendered once and the shots cycle (a new
    shot every `shot` seconds) until `seconds`; x264 "ultrafast" so a 30-minute 720p file takes
    minutes to make, not an hour. The soundtrack `sound` is muxed as given (cut to `seconds`)."""
    path = Path(path)
    rng = np.random.default_rng(0)
    # Converted to the encoder's pixel format once: the conversion, not x264, bounded the rate.
    rendered = [
        [av.VideoFrame.from_ndarray(px, format="rgb24").reformat(format="yuv420p")
         for px in _shot_frames(p, shot, size, fps, 4, rng)]
        for p in photos
    ]
    total = round(seconds * fps)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "28"}
        audio = None
        if sound is not None:
            audio = out.add_stream("aac", rate=rate)
            audio.layout = "mono"
        for n in range(total):
            frames = rendered[(n // len(rendered[0])) % len(rendered)]
            frame = frames[n % len(frames)]
            frame.pts = n
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None and sound is not None:
            _mux_sound(out, audio, sound[: round(seconds * rate)], rate)
    return path
