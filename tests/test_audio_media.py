"""Tests for mmsearch.media.audio: probing and streaming audio files of every kind, good and bad.

All files are generated here: tones and noise written with soundfile (WAV, FLAC, Ogg Vorbis,
AIFF, CAF) and encoded with PyAV (MP3, AAC in M4A and ADTS, Opus, WMA) where this FFmpeg has the
encoder.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Self

import numpy as np
import pytest

from mmsearch.errors import MediaError
from mmsearch.media import AUDIO, AUDIO_EXTENSIONS, IMAGE, VIDEO, AudioInfo, kind_of
from mmsearch.media.audio import decode_audio, probe_audio, read_audio

sf = pytest.importorskip("soundfile")
av = pytest.importorskip("av")
pytest.importorskip("soxr")

RATE = 16000
TONE = 440.0


# --------------------------------------------------------------------------- helpers


def tone(sr: int, seconds: float, channels: int = 1, freq: float = TONE) -> np.ndarray:
    """A sine of `freq` Hz, shape (frames, channels); channel k at amplitude 0.5 / (k + 1)."""
    t = np.arange(round(sr * seconds)) / sr
    wave = np.sin(2 * np.pi * freq * t)
    return np.stack([0.5 / (k + 1) * wave for k in range(channels)], axis=1).astype(np.float32)


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # noqa: BLE001 - any failure means "not in this FFmpeg"
        return False
    return True


def encode(path: Path, codec: str, container: str, sr: int, data: np.ndarray) -> Path:
    """Encode (frames, channels) float samples with PyAV; skip the test without the encoder."""
    if not has_encoder(codec):
        pytest.skip(f"this FFmpeg has no {codec} encoder")
    layout = {1: "mono", 2: "stereo"}[data.shape[1]]
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=sr, layout=layout)
        stream.bit_rate = 128_000  # wmav2 refuses to open without one
        for start in range(0, len(data), 4096):
            planes = np.ascontiguousarray(data[start : start + 4096].T)
            frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
            frame.sample_rate = sr
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def read_all(path: Path, **kwargs: object) -> np.ndarray:
    blocks = list(read_audio(str(path), **kwargs))  # type: ignore[arg-type]
    assert blocks, "read_audio yielded nothing without raising"
    for block in blocks:
        assert block.dtype == np.float32 and block.ndim == 1
    return np.concatenate(blocks)


def peak_hz(signal: np.ndarray, rate: int = RATE) -> float:
    """The frequency of the strongest FFT bin, ignoring a short edge at both ends."""
    edge = min(len(signal) // 10, rate // 10)
    core = signal[edge : len(signal) - edge] if edge else signal
    spectrum = np.abs(np.fft.rfft(core * np.hanning(len(core))))
    return float(np.argmax(spectrum) * rate / len(core))


def expect_media_error(path: Path, *words: str) -> MediaError:
    """Both probing and reading `path` fail with MediaError naming the file and a reason."""
    with pytest.raises(MediaError) as probed:
        probe_audio(str(path))
    with pytest.raises(MediaError) as read:
        read_all(path)
    for exc in (probed.value, read.value):
        assert exc.path == str(path)
        assert exc.reason and "\n" not in exc.reason
        for word in words:
            assert word in exc.reason
    return read.value


# --------------------------------------------------------------------------- kinds


def test_kind_of_audio_extensions():
    assert kind_of("x.FLAC") == AUDIO
    assert kind_of("/a/b/memo.m4a") == AUDIO
    assert kind_of("take.Wav") == AUDIO
    assert kind_of("song.opus") == AUDIO
    assert kind_of("photo.jpg") == IMAGE
    assert kind_of("movie.mp4") == VIDEO
    assert kind_of("archive.zip") is None
    assert {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aiff"} <= AUDIO_EXTENSIONS


# --------------------------------------------------------------------------- every format

SECONDS = 6.0
SR = 44100

FORMATS = {
    # name: (file name, writer, expected codec)
    "wav": ("a.wav", lambda p, d: sf.write(p, d, SR, subtype="PCM_16"), "PCM_16"),
    "wav-float": ("a.wave", lambda p, d: sf.write(p, d, SR, "FLOAT", format="WAV"), "FLOAT"),
    "flac": ("a.flac", lambda p, d: sf.write(p, d, SR), "FLAC"),
    "ogg-vorbis": ("a.ogg", lambda p, d: sf.write(p, d, SR, format="OGG"), "VORBIS"),
    "aiff": ("a.aiff", lambda p, d: sf.write(p, d, SR, format="AIFF"), "PCM_16"),
    "caf": ("a.caf", lambda p, d: sf.write(p, d, SR, format="CAF"), "PCM_16"),
    "w64": ("a.w64", lambda p, d: sf.write(p, d, SR, format="W64"), "PCM_16"),
    "mp3": ("a.mp3", lambda p, d: encode(p, "libmp3lame", "mp3", SR, d), "mp3"),
    "m4a": ("a.m4a", lambda p, d: encode(p, "aac", "ipod", SR, d), "aac"),
    "adts-aac": ("a.aac", lambda p, d: encode(p, "aac", "adts", SR, d), "aac"),
    "wma": ("a.wma", lambda p, d: encode(p, "wmav2", "asf", SR, d), "wmav2"),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_probes_and_streams(tmp_path: Path, name: str):
    file_name, write, codec = FORMATS[name]
    path = tmp_path / file_name
    write(path, tone(SR, SECONDS, channels=2))

    info = probe_audio(str(path))
    assert isinstance(info, AudioInfo)
    assert info.duration == pytest.approx(SECONDS, abs=0.05)
    assert (info.sample_rate, info.channels, info.codec) == (SR, 2, codec)
    assert info.frames == pytest.approx(SECONDS * SR, abs=0.05 * SR)

    problems: list[str] = []
    signal = read_all(path, problems=problems)
    assert len(signal) == pytest.approx(SECONDS * RATE, rel=0.01)
    assert peak_hz(signal) == pytest.approx(TONE, abs=2)
    # Channels at amplitude 0.5 and 0.25 average to 0.375.
    assert np.percentile(np.abs(signal), 99.5) == pytest.approx(0.375, abs=0.03)
    assert problems == []


def test_opus(tmp_path: Path):
    data = tone(48000, SECONDS, channels=2)
    if has_encoder("libopus"):
        path = encode(tmp_path / "a.opus", "libopus", "ogg", 48000, data)
    else:  # libsndfile writes Opus too
        path = tmp_path / "a.opus"
        sf.write(path, data, 48000, format="OGG", subtype="OPUS")
    info = probe_audio(str(path))
    assert info.duration == pytest.approx(SECONDS, abs=0.05)
    assert (info.sample_rate, info.channels, info.codec.lower()) == (48000, 2, "opus")
    signal = read_all(path)
    assert len(signal) == pytest.approx(SECONDS * RATE, rel=0.01)
    assert peak_hz(signal) == pytest.approx(TONE, abs=2)


def test_mp3_written_by_libsndfile_goes_through_ffmpeg_quietly(tmp_path: Path, capfd):
    path = tmp_path / "lib.mp3"
    sf.write(path, tone(SR, 2.0, channels=2), SR, format="MP3")
    assert probe_audio(str(path)).codec == "mp3"
    assert len(read_all(path)) == pytest.approx(2.0 * RATE, rel=0.01)
    assert capfd.readouterr().err == ""


# --------------------------------------------------------------------------- rates and channels


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000, 96000, 384000])
def test_any_sample_rate_resamples_to_16k_keeping_the_pitch(tmp_path: Path, sr: int):
    path = tmp_path / f"tone_{sr}.wav"
    sf.write(path, tone(sr, 2.0), sr, subtype="PCM_24")
    assert probe_audio(str(path)).sample_rate == sr
    signal = read_all(path)
    assert len(signal) == pytest.approx(2.0 * RATE, rel=0.01)
    assert peak_hz(signal) == pytest.approx(TONE, abs=2)


def test_other_output_rates(tmp_path: Path):
    path = tmp_path / "tone.flac"
    sf.write(path, tone(44100, 1.0), 44100)
    for rate in (8000, 22050, 32000, 48000):
        signal = read_all(path, rate=rate)
        assert len(signal) == pytest.approx(rate, rel=0.01)
        assert peak_hz(signal, rate) == pytest.approx(TONE, abs=3)


@pytest.mark.parametrize("channels", [1, 2, 3, 6, 8, 12])
def test_downmix_is_the_channel_average_exactly(tmp_path: Path, channels: int):
    """At the file's own rate nothing is resampled: the output is the mean of the channels."""
    rng = np.random.default_rng(channels)
    data = (rng.standard_normal((24000, channels)) * 0.1).astype(np.float32)
    path = tmp_path / f"ch{channels}.wav"
    sf.write(path, data, 24000, subtype="FLOAT")
    assert probe_audio(str(path)).channels == channels
    signal = read_all(path, rate=24000, block_seconds=0.3)
    np.testing.assert_allclose(signal, data.mean(axis=1), atol=1e-6)


def test_stereo_in_opposite_phase_cancels(tmp_path: Path):
    left = tone(SR, 1.0)[:, 0]
    path = tmp_path / "phase.wav"
    sf.write(path, np.stack([left, -left], axis=1), SR, subtype="FLOAT")
    assert np.abs(read_all(path)).max() < 1e-3


def test_blocks_are_contiguous_and_sized(tmp_path: Path):
    path = tmp_path / "tone.flac"
    sf.write(path, tone(SR, 5.0, channels=2), SR)
    whole = read_all(path, block_seconds=60)
    blocks = list(read_audio(str(path), block_seconds=0.7))
    assert [len(b) for b in blocks[:-1]] == [round(0.7 * RATE)] * (len(blocks) - 1)
    assert 0 < len(blocks[-1]) <= round(0.7 * RATE)
    np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_max_seconds(tmp_path: Path):
    path = tmp_path / "tone.wav"
    sf.write(path, tone(SR, 5.0, channels=2), SR)
    assert len(read_all(path, max_seconds=1.25)) == round(1.25 * RATE)
    assert len(read_all(path, max_seconds=100)) == pytest.approx(5.0 * RATE, rel=0.01)
    mp3 = encode(tmp_path / "tone.mp3", "libmp3lame", "mp3", SR, tone(SR, 5.0, channels=2))
    assert len(read_all(mp3, max_seconds=2.0, block_seconds=0.5)) == 2 * RATE


def test_decode_audio_returns_signal_and_info(tmp_path: Path):
    path = tmp_path / "clip.ogg"
    sf.write(path, tone(48000, 3.0, channels=2), 48000, format="OGG")
    signal, info = decode_audio(str(path))
    assert info.sample_rate == 48000 and info.channels == 2 and info.codec == "VORBIS"
    assert signal.dtype == np.float32 and signal.ndim == 1
    assert len(signal) == pytest.approx(3.0 * RATE, rel=0.01)
    short, _ = decode_audio(str(path), rate=8000, max_seconds=0.5)
    assert len(short) == 4000


def test_one_sample_and_very_short_files(tmp_path: Path):
    for sr in (44100, 8000, 16000):
        path = tmp_path / f"one_{sr}.wav"
        sf.write(path, np.array([[0.5]], np.float32), sr)
        info = probe_audio(str(path))
        assert info.frames == 1 and info.duration == pytest.approx(1 / sr)
        signal, _ = decode_audio(str(path))
        assert 1 <= len(signal) <= 3
        assert np.isfinite(signal).all()
    short = tmp_path / "short.flac"
    sf.write(short, tone(44100, 0.1, channels=2), 44100)
    assert probe_audio(str(short)).duration == pytest.approx(0.1)
    assert len(read_all(short)) == pytest.approx(0.1 * RATE, rel=0.01)


def test_non_finite_samples_are_cleaned(tmp_path: Path):
    data = tone(SR, 1.0)
    data[1000:1010] = np.nan
    data[2000] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, data, SR, subtype="FLOAT")
    signal = read_all(path)
    assert np.isfinite(signal).all()
    assert peak_hz(signal) == pytest.approx(TONE, abs=2)


def test_sample_rate_change_midway(tmp_path: Path):
    """Two MP3s of different rates glued together (cat a.mp3 b.mp3) decode as one signal."""
    first = encode(tmp_path / "a.mp3", "libmp3lame", "mp3", 44100, tone(44100, 2.0, 2))
    second = encode(tmp_path / "b.mp3", "libmp3lame", "mp3", 22050, tone(22050, 2.0, 2))
    glued = tmp_path / "glued.mp3"
    glued.write_bytes(first.read_bytes() + second.read_bytes())
    problems: list[str] = []
    signal = read_all(glued, problems=problems)
    assert len(signal) == pytest.approx(4.0 * RATE, rel=0.05)
    assert peak_hz(signal[-RATE:]) == pytest.approx(TONE, abs=3)


# --------------------------------------------------------------------------- long files


def test_long_file_streams_in_bounded_blocks(tmp_path: Path):
    """Ten minutes at 8 kHz come out in 30 s blocks, never as one array of the whole file."""
    sr, minutes = 8000, 10
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=sr, channels=2, subtype="PCM_16") as out:
        for _ in range(minutes):
            out.write((rng.standard_normal((60 * sr, 2)) * 0.01).astype(np.float32))
    assert probe_audio(str(path)).duration == pytest.approx(minutes * 60)

    whole_bytes = minutes * 60 * RATE * 4  # the whole signal as float32 at 16 kHz
    tracemalloc.start()
    try:
        count = total = largest = 0
        for block in read_audio(str(path), block_seconds=30):
            count += 1
            total += len(block)
            largest = max(largest, len(block))
            del block
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert largest <= 30 * RATE + 16
    assert count == minutes * 2
    assert total == pytest.approx(minutes * 60 * RATE, rel=0.001)
    assert peak < whole_bytes / 4, f"peak {peak} bytes for a {whole_bytes}-byte signal"


# --------------------------------------------------------------------------- bad files


def test_zero_byte_file(tmp_path: Path):
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    expect_media_error(path, "empty")


def test_wav_header_without_data(tmp_path: Path):
    path = tmp_path / "header_only.wav"
    sf.write(path, np.zeros((0, 2), np.float32), SR)
    assert path.stat().st_size > 0
    expect_media_error(path, "empty (0 samples)")


def test_random_bytes_named_mp3(tmp_path: Path, capfd):
    path = tmp_path / "noise.mp3"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 50_000, np.uint8).tobytes())
    expect_media_error(path, "not an audio file")
    assert capfd.readouterr().err == ""


def test_png_named_wav(tmp_path: Path):
    from PIL import Image

    path = tmp_path / "picture.wav"
    Image.new("RGB", (16, 16), (200, 10, 10)).save(path, format="PNG")
    expect_media_error(path, "not an audio file", "PNG")


def test_text_named_flac(tmp_path: Path):
    path = tmp_path / "notes.flac"
    path.write_text("just some words, no sound at all\n" * 20)
    expect_media_error(path, "not an audio file")


def test_video_without_sound_named_m4a(tmp_path: Path):
    if not has_encoder("mpeg4"):
        pytest.skip("this FFmpeg has no mpeg4 encoder")
    path = tmp_path / "silent_film.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    expect_media_error(path, "no audio stream")


@pytest.mark.parametrize("suffix", [".flac", ".wav"])
def test_file_cut_in_half(tmp_path: Path, suffix: str, capfd):
    whole = tmp_path / f"whole{suffix}"
    sf.write(whole, tone(SR, 8.0, channels=2) + 0.01, SR)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])

    problems: list[str] = []
    signal = read_all(cut, problems=problems)
    assert len(signal) == pytest.approx(4.0 * RATE, rel=0.05)
    assert peak_hz(signal) == pytest.approx(TONE, abs=2)
    assert problems and all(isinstance(p, str) and p for p in problems)
    assert "truncated" in " ".join(problems)
    try:
        probe_audio(str(cut))
    except MediaError as exc:
        assert exc.reason
    assert capfd.readouterr().err == ""


def test_flac_with_garbage_in_the_middle(tmp_path: Path):
    path = tmp_path / "damaged.flac"
    rng = np.random.default_rng(2)
    sf.write(path, tone(SR, 8.0, channels=2) + rng.normal(0, 0.01, (8 * SR, 2)), SR)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 5000] = rng.integers(0, 256, 5000, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    problems: list[str] = []
    signal = read_all(path, problems=problems)
    # libsndfile stops at the damage; FFmpeg carries on past it.
    assert len(signal) == pytest.approx(8.0 * RATE, rel=0.05)
    assert problems


def test_mp3_with_garbage_in_the_middle(tmp_path: Path, capfd):
    path = encode(tmp_path / "a.mp3", "libmp3lame", "mp3", SR, tone(SR, 10.0, channels=2))
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    rng = np.random.default_rng(3)
    data[middle : middle + 8000] = rng.integers(0, 256, 8000, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    problems: list[str] = []
    try:
        signal = read_all(path, problems=problems)
    except MediaError as exc:  # allowed, though FFmpeg normally decodes around the damage
        assert exc.reason
    else:
        assert len(signal) > 5.0 * RATE
        assert peak_hz(signal) == pytest.approx(TONE, abs=2)
    assert capfd.readouterr().err == ""


def test_mp3_cut_short_is_noted(tmp_path: Path):
    path = encode(tmp_path / "a.mp3", "libmp3lame", "mp3", SR, tone(SR, 9.0, channels=2))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    problems: list[str] = []
    signal = read_all(path, problems=problems)
    assert len(signal) == pytest.approx(3.0 * RATE, rel=0.05)
    assert any("stopped at 3.0 s of 9.0 s" in p for p in problems), problems


def test_ogg_vorbis_with_garbage_in_the_middle(tmp_path: Path):
    path = tmp_path / "damaged.ogg"
    rng = np.random.default_rng(4)
    sf.write(path, tone(SR, 20.0, channels=2) + rng.normal(0, 0.01, (20 * SR, 2)), SR)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3000] = rng.integers(0, 256, 3000, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    problems: list[str] = []
    signal = read_all(path, problems=problems)
    assert 5.0 * RATE < len(signal) <= 20.0 * RATE * 1.01
    if len(signal) < 19.0 * RATE:
        assert any("20.0 s" in p for p in problems), problems


class FailingFile:
    """A file object whose reads fail with EIO after `good` bytes, like an unplugged drive."""

    def __init__(self, path: Path, good: int) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._good = good
        self.name = str(path)

    def read(self, size: int = -1) -> bytes:
        if self._file.tell() >= self._good:
            raise OSError(5, "Input/output error")
        return self._file.read(size)

    def __getattr__(self, name: str) -> object:
        return getattr(self._file, name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def test_read_error_midway_raises_media_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from mmsearch.media import audio as audio_module

    path = encode(tmp_path / "a.mp3", "libmp3lame", "mp3", SR, tone(SR, 20.0, channels=2))
    size = path.stat().st_size
    monkeypatch.setattr(audio_module, "_open", lambda p: FailingFile(Path(p), size // 2))
    blocks = read_audio(str(path), block_seconds=1.0)
    with pytest.raises(MediaError) as caught:
        for _ in blocks:
            pass
    assert "Input/output error" in caught.value.reason


def test_file_deleted_between_probe_and_read(tmp_path: Path):
    path = tmp_path / "gone.flac"
    sf.write(path, tone(SR, 1.0), SR)
    probe_audio(str(path))
    path.unlink()
    with pytest.raises(MediaError) as caught:
        read_all(path)
    assert "not found" in caught.value.reason
    with pytest.raises(MediaError):
        decode_audio(str(path))


@pytest.mark.parametrize("suffix", [".wav", ".mp3"])
def test_file_deleted_or_cut_while_reading(tmp_path: Path, suffix: str):
    """The open handle keeps a deleted file readable; a file cut short midway ends early. Either
    way: blocks or MediaError, nothing else."""
    data = tone(SR, 6.0, channels=2)
    for change in ("delete", "truncate"):
        path = tmp_path / f"{change}{suffix}"
        if suffix == ".wav":
            sf.write(path, data, SR)
        else:
            encode(path, "libmp3lame", "mp3", SR, data)
        blocks = read_audio(str(path), block_seconds=1.0)
        got = [next(blocks)]
        if change == "delete":
            path.unlink()
        else:
            os.truncate(path, path.stat().st_size // 3)
        try:
            got.extend(blocks)
        except MediaError as exc:
            assert exc.reason
        assert sum(len(b) for b in got) >= RATE


def test_directory_and_missing_path(tmp_path: Path):
    with pytest.raises(MediaError, match="directory"):
        probe_audio(str(tmp_path))
    with pytest.raises(MediaError, match="not found"):
        list(read_audio(str(tmp_path / "nothing.wav")))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads everything")
def test_permission_denied(tmp_path: Path):
    path = tmp_path / "secret.wav"
    sf.write(path, tone(SR, 0.5), SR)
    path.chmod(0)
    try:
        expect_media_error(path, "permission denied")
    finally:
        path.chmod(0o644)


def test_bad_arguments(tmp_path: Path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(SR, 0.5), SR)
    for kwargs in ({"rate": 0}, {"block_seconds": 0}, {"max_seconds": -1.0}):
        with pytest.raises(ValueError):
            read_audio(str(path), **kwargs)  # type: ignore[arg-type]
