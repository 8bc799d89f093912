"""Audio through the whole engine with the weightless test model: sounds are indexed beside
images and notes, found by description, by example sound and by keyword, with where in a long
recording the match is; bad recordings are skipped with a reason and lose nothing."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import COLOURS, make_image

from mmsearch import Library
from mmsearch.cli import app
from mmsearch.encoders.base import ModelSpec
from mmsearch.encoders.registry import resolve_model, upgrade_spec

RATE = 22_050


def tone(path: Path, freq: float, seconds: float, rate: int = RATE, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.4 * np.sin(2 * np.pi * freq * t)
    soundfile.write(path, np.repeat(signal[:, None], channels, axis=1), rate)
    return path


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    root = tmp_path / "mixed"
    make_image(root / "red.png", COLOURS["red"])
    (root / "notes").mkdir()
    (root / "notes" / "bread.md").write_text("Knead the dough and bake the bread.\n")
    tone(root / "sounds" / "hum.wav", 150, 3.0)
    tone(root / "sounds" / "whistle.flac", 3000, 4.0, channels=2)
    tone(root / "sounds" / "click.wav", 3000, 0.1)
    long = root / "sounds" / "long.wav"
    t = np.arange(int(12 * RATE)) / RATE
    signal = np.where(t < 7.0, np.sin(2 * np.pi * 150 * t), np.sin(2 * np.pi * 3000 * t)) * 0.4
    soundfile.write(long, signal, RATE)
    return root


def names(hits: list) -> list[str]:
    return [Path(h.path).name for h in hits]


def test_sounds_are_indexed_and_found_by_description_with_their_time_range(
    tmp_path: Path, mixed: Path
) -> None:
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        report = lib.index([mixed])
        assert (report.added, report.failed) == (6, 0)
        assert lib.stats().items == {"image": 1, "text": 1, "audio": 4}
        high = lib.search("high", k=10, kinds=["audio"])
        assert set(names(high)) == {"whistle.flac", "click.wav", "long.wav"}
        long_hit = next(h for h in high if h.path.endswith("long.wav"))
        assert long_hit.start is not None and long_hit.start >= 6.0 and long_hit.end <= 12.01
        everything = lib.search("high", k=20, min_score=-1)
        assert {h.kind for h in everything} == {"image", "text", "audio"}  # one list
        assert all(h.start is None for h in everything if h.kind != "audio")


def test_more_like_this_sound_uses_stored_vectors_and_unindexed_examples(
    tmp_path: Path, mixed: Path
) -> None:
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([mixed])
        hits = lib.search(audio=mixed / "sounds" / "hum.wav", k=3)
        # long.wav's first seven seconds are the same hum: both match fully.
        assert set(names(hits)[:2]) == {"hum.wav", "long.wav"}
        assert hits[1].score == pytest.approx(1.0, abs=1e-4)
        long_hit = next(h for h in hits if h.path.endswith("long.wav"))
        assert long_hit.end is not None and long_hit.end <= 8.0
        outside = tone(tmp_path / "elsewhere" / "hum-copy.ogg", 150, 2.0, rate=16_000)
        assert names(lib.search(audio=[outside], k=1, kinds=["audio"]))[0] in {"hum.wav", "long.wav"}
        both = lib.search("high", audio=mixed / "sounds" / "hum.wav", k=10)
        assert "hum.wav" in names(both) and "whistle.flac" in names(both)


def test_per_clip_facts_and_keyword_search_on_tags(tmp_path: Path, mixed: Path) -> None:
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([mixed])
        item = lib.item(mixed / "sounds" / "whistle.flac")
        assert item.kind == "audio" and item.duration == pytest.approx(4.0, abs=0.05)
        assert (item.sample_rate, item.channels) == (RATE, 2)
        assert item.codec and item.tags[0][0] == "high"
    runner = CliRunner()
    shown = runner.invoke(app, ["info", str(mixed / "sounds" / "long.wav"), "--index", str(tmp_path / "idx")])
    assert shown.exit_code == 0 and "sounds:" in shown.stdout and "22050 Hz" in shown.stdout
    found = runner.invoke(
        app, ["search", "high", "--kind", "audio", "--index", str(tmp_path / "idx"), "--json"]
    )
    hits = json.loads(found.stdout)
    assert {"start", "end", "duration"} <= set(hits[0])
    plain = runner.invoke(app, ["search", "--audio", str(mixed / "sounds" / "long.wav"),
                                "--index", str(tmp_path / "idx"), "-k", "1"])
    score, kind, path, where = plain.stdout.strip().split("\t")
    assert kind == "audio" and path.endswith("long.wav") and "-" in where and ":" in where


def test_bad_recordings_are_skipped_with_reasons_and_the_run_goes_on(tmp_path: Path, mixed: Path) -> None:
    bad = mixed / "bad"
    bad.mkdir()
    (bad / "empty.wav").write_bytes(b"")
    (bad / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(5000))
    (bad / "picture.wav").write_bytes((mixed / "red.png").read_bytes())
    whole = tone(tmp_path / "whole.wav", 440, 2.0)
    (bad / "truncated.wav").write_bytes(whole.read_bytes()[:30])
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        report = lib.index([mixed])
        assert report.added == 6
        reasons = dict(report.failures)
        for name in ("empty.wav", "noise.mp3", "picture.wav", "truncated.wav"):
            assert str(bad / name) in reasons, reasons
            assert reasons[str(bad / name)]
        assert {Path(s.path).name for s in lib.errors()} >= {"empty.wav", "noise.mp3"}
        assert len(lib.search("high", k=10, kinds=["audio"])) == 3


def test_a_model_without_audio_skips_sounds_with_a_clear_reason(
    tmp_path: Path, mixed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmsearch.encoders.hashing import HashEncoder

    original = HashEncoder.__init__

    def without_audio(self: HashEncoder, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        self.audio = None

    monkeypatch.setattr(HashEncoder, "__init__", without_audio)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        report = lib.index([mixed])
        assert report.added == 2 and report.failed == 4
        assert all("no audio encoder" in reason for _, reason in report.failures)


def test_an_older_offline_index_gains_the_audio_options() -> None:
    current = resolve_model("offline-default")
    old = ModelSpec(
        current.name,
        current.family,
        {k: v for k, v in current.options.items() if k not in ("audio_model", "speech_model")},
    )
    assert upgrade_spec(old) == current
    changed = ModelSpec(current.name, current.family, {**old.options, "image_model": "x"})
    assert upgrade_spec(changed) == changed


def test_odd_but_valid_recordings_are_indexed(tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    tone(folder / "hires.wav", 3000, 1.0, rate=384_000)
    tone(folder / "surround.wav", 150, 1.5, rate=48_000, channels=8)
    tone(folder / "phone.wav", 150, 1.0, rate=8_000)
    soundfile.write(folder / "one-sample.wav", np.array([0.5], np.float32), 44_100)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        report = lib.index([folder])
        assert (report.added, report.failed) == (4, 0), report.failures
        assert lib.item(folder / "surround.wav").channels == 8
        assert names(lib.search("high", kinds=["audio"], k=1)) == ["hires.wav"]


def test_a_ten_hour_silent_file_streams_through(tmp_path: Path) -> None:
    """Ten hours at 8 kHz: the recording is streamed in blocks, never held whole (the peak
    memory of decoded samples would be 1.1 GB), and its windows say where they are."""
    path = tmp_path / "night" / "silence-10h.flac"
    path.parent.mkdir()
    with soundfile.SoundFile(path, "w", samplerate=8_000, channels=1, format="FLAC") as f:
        block = np.zeros(8_000 * 600, np.int16)
        for _ in range(60):
            f.write(block)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        tracemalloc.start()  # numpy reports its buffers to tracemalloc
        try:
            report = lib.index([path.parent])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (report.added, report.failed) == (1, 0)
        assert peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MiB: the recording was held whole"
        item = lib.item(path)
        assert item.duration == pytest.approx(36_000, abs=1) and item.tags[0][0] == "silence"
        hit = lib.search("silence", kinds=["audio"], k=1)[0]
        assert hit.end is not None and hit.end - hit.start == pytest.approx(2.0, abs=0.01)


def test_a_recording_that_fails_half_way_is_recorded_and_the_run_goes_on(
    tmp_path: Path, mixed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long recording (streamed) whose drive vanishes mid-read: fault injected at the decoder."""
    from mmsearch import ingest_encode
    from mmsearch.errors import MediaError

    real_read = ingest_encode.read_audio

    def vanishing(path: str, **kwargs: object):  # type: ignore[no-untyped-def]
        blocks = real_read(path, **kwargs)
        if path.endswith("long-talk.wav"):
            yield next(iter(blocks))
            raise MediaError(path, "cannot read: No such file or directory")
        yield from blocks

    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([mixed])
        tone(mixed / "sounds" / "long-talk.wav", 150, 130.0, rate=8_000)  # > 120 s: streamed
        monkeypatch.setattr(ingest_encode, "read_audio", vanishing)
        (mixed / "sounds" / "new.wav").write_bytes((mixed / "sounds" / "hum.wav").read_bytes()[:-2])
        report = lib.index()
        assert [Path(p).name for p, _ in report.failures] == ["long-talk.wav"]
        assert "No such file" in report.failures[0][1]
        assert lib.stats().items["audio"] == 5  # the four before and the new one
