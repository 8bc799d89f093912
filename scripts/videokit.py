"""Making test videos with PyAV (no ffmpeg command here): photos as shots with a slow pan and
zoom and sensor-like noise, a soundtrack muxed from samples. Used by the video evaluation, the
video benchmark and the tests; the photos and sounds come from ../shared/data or the samples,
never from the repository."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def _shot_frames(
    image: Image.Image, seconds: float, size: tuple[int, int], fps: int, noise: int,
    rng: np.random.Generator,
) -> Iterator[np.ndarray]:
    width, height = size
    # Scaled to cover 1.2x the frame, so the crop can travel (pan) and shrink (zoom).
    cover = max(width * 1.2 / image.width, height * 1.2 / image.height)
    big = image.convert("RGB").resize((round(image.width * cover), round(image.height * cover)))
    count = max(1, round(seconds * fps))
    for i in range(count):
        progress = i / count
        zoom = 1.0 - 0.12 * progress  # crop shrinks: the camera zooms in
        w, h = round(width * zoom), round(height * zoom)
        x = round((big.width - w) * (0.2 + 0.6 * progress))
        y = round((big.height - h) * 0.5)
        frame = big.crop((x, y, x + w, y + h)).resize((width, height), Image.BILINEAR)
        pixels = np.asarray(frame, dtype=np.int16)
        if noise:
            pixels = pixels + rng.integers(-noise, noise + 1, (height, width, 1), dtype=np.int16)
        yield np.clip(pixels, 0, 255).astype(np.uint8)


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
) -> Path:
    """An H.264 (+ AAC when `sound` is given) MP4 of `shots`: (photo, seconds) each, None for
    black. `rotation` stores a display rotation as phones do (the pixels stay landscape)."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as out:
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
        for image, seconds in shots:
            if image is None:
                frames = (np.zeros((size[1], size[0], 3), np.uint8) for _ in range(round(seconds * fps)))
            else:
                frames = _shot_frames(image, seconds, size, fps, noise, rng)
            for pixels in frames:
                for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                    out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None and sound is not None:
            samples = np.asarray(sound, np.float32)
            step = 1024
            for start in range(0, len(samples), step):
                block = samples[start : start + step]
                frame = av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
                frame.sample_rate = rate
                frame.pts = start
                frame.time_base = Fraction(1, rate)
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
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
