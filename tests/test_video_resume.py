"""A long film is committed a part at a time: a run killed part-way (kill -9, power loss) leaves
it searchable for what was committed and shown as part-way, and the next run goes on from there
without encoding a committed window again, ending with the windows an uninterrupted run makes.
A film that changed meanwhile starts again from 0."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_video import RATE, film, tone
from videokit import soundtrack

from mmsearch import Library
from mmsearch.cli import app
from mmsearch.encoders.hashing import HashAudioEncoder, HashEncoder
from mmsearch.ingest_write import CatalogWriter
from mmsearch.store.catalog import Catalog
from mmsearch.store.catalog_schema import SCHEMA_VERSION

PART = 20  # seconds per committed part (`video_commit_seconds`), so a 3-minute film has 9
SHOT = 6.0
CYCLE = ["red", "blue", "green", "yellow", "purple", "orange"]


@pytest.fixture(autouse=True)
def parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSEARCH_VIDEO_COMMIT_SECONDS", str(PART))


def colours_of(shots: int, colours: list[str] = CYCLE) -> list[str]:
    """Gray first, white last (each once, so a search for it has one right moment), and
    `colours` cycling between."""
    return ["gray", *(colours[n % len(colours)] for n in range(shots - 2)), "white"]


def long_film(path: Path, shots: int = 30, colours: list[str] = CYCLE) -> Path:
    """`shots` shots of 6 s (`colours_of`; 3 minutes by default), a low hum under the even ones
    and a high whistle under the odd ones, at 10 frames a second."""
    sound = soundtrack([(tone(150 if n % 2 == 0 else 3000, SHOT), SHOT) for n in range(shots)], RATE)
    return film(path, colours_of(shots, colours), seconds=SHOT, sound=sound, fps=10)


def windows(index: Path) -> dict[int, tuple[str, str | None, float, float, bytes]]:
    """Vector id -> (space, source, start, end, vector) of every window the index holds."""
    with sqlite3.connect(index / "catalog.db") as db:
        rows = db.execute("SELECT id, space, source, t_start, t_end, vector FROM vectors").fetchall()
    return {r[0]: (r[1], r[2], round(r[3], 4), round(r[4], 4), r[5]) for r in rows}


def indexed_until(index: Path) -> float | None:
    try:
        with sqlite3.connect(index / "catalog.db", timeout=5) as db:
            row = db.execute("SELECT indexed_until FROM items WHERE kind = 'video'").fetchone()
    except sqlite3.OperationalError:  # not created yet (or an mmsearch without parts)
        return None
    return row[0] if row else None


def kill_part_way(media: Path, index: Path) -> float | None:
    """Run `mmsearch index` and kill -9 it once a part of the film is committed; how far the
    film was done, or None when the run finished first."""
    cmd = [sys.executable, "-m", "mmsearch", "index", str(media), "--index", str(index),
           "--model", "hash-test"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while indexed_until(index) is None:
        if proc.poll() is not None:
            return None
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    return indexed_until(index)


def shot_colour(seconds: float) -> str:
    """The colour of the 3-minute film's shot at `seconds`."""
    return colours_of(30)[int((seconds + 0.05) // SHOT)]


def clean_windows(media: Path, index: Path) -> list[tuple[str, str | None, float, float, bytes]]:
    with Library.open(index, model="hash-test") as lib:
        lib.index([media])
    return sorted(windows(index).values())


def test_a_film_killed_part_way_goes_on_without_encoding_its_committed_windows_again(tmp_path: Path) -> None:
    media = tmp_path / "media"
    path = long_film(media / "film.mp4")
    for attempt in range(3):
        index = tmp_path / f"index{attempt}"
        until = kill_part_way(media, index)
        if until is not None:
            break
    assert until is not None, "the film was never left part-way (committed in one go?)"
    assert until % PART == 0 and 0 < until < 180
    committed = windows(index)
    assert committed and all(end <= until + 1e-6 for _, _, _, end, _ in committed.values())

    # What the model is given on the run that goes on: pictures and seconds of sound.
    pictures: list[int] = []
    heard: list[int] = []
    embed_images, embed_recording = HashEncoder.embed_images, HashAudioEncoder.embed_recording

    def count_images(self, batch):  # type: ignore[no-untyped-def]
        pictures.append(len(batch))
        return embed_images(self, batch)

    def count_sound(self, blocks):  # type: ignore[no-untyped-def]
        def counted():  # type: ignore[no-untyped-def]
            for block in blocks:
                heard.append(len(block))
                yield block
        return embed_recording(self, counted())

    with pytest.MonkeyPatch.context() as patch, Library.open(index) as lib:
        patch.setattr(HashEncoder, "embed_images", count_images)
        patch.setattr(HashAudioEncoder, "embed_recording", count_sound)
        report = lib.index([media])
        assert (report.resumed, report.updated, report.failed) == (1, 1, 0)
        assert lib.item(path).indexed_until is None  # whole now

        # The search finds the right moments, before the kill point and after it.
        first, last = (lib.search(colour, kinds=["video"], k=1)[0] for colour in ("gray", "white"))
        assert (first.start, first.end) == pytest.approx((0.0, 6.0), abs=0.2)
        assert (last.start, last.end) == pytest.approx((174.0, 180.0), abs=0.2)
        yellow = lib.search("yellow", kinds=["video"], k=1)[0]
        starts = [yellow.start, *(start for start, _, _ in yellow.moments)]
        assert yellow.moments and all(shot_colour(s) == "yellow" for s in starts)

    final = windows(index)
    # The windows committed before the kill are the same rows (never encoded again) ...
    assert {vid: final.get(vid) for vid in committed} == committed
    keyframes = sorted((t0, t1) for space, source, t0, t1, _ in final.values() if source == "frame")
    assert sum(pictures) == sum(1 for t0, _ in keyframes if t0 >= until - 1e-6) > 0
    # ... the sound before the kill point was not heard again (the hash model's rate is 8 kHz)
    assert sum(heard) == pytest.approx((180 - until) * 8000, abs=8000)
    # ... and the film holds what an uninterrupted run gives it: no window twice, no gap.
    assert sorted(final.values()) == clean_windows(media, tmp_path / "clean")
    assert len(set(final.values())) == len(final)
    assert keyframes[0][0] == 0.0 and keyframes[-1][1] == pytest.approx(180.0, abs=0.1)
    assert all(a[1] == b[0] for a, b in pairwise(keyframes))
    sound = sorted((t0, t1) for space, _, t0, t1, _ in final.values() if space == "acoustic")
    assert sound[0][0] == 0.0 and sound[-1][1] == pytest.approx(180.0, abs=0.1)
    assert all(b[0] <= a[1] and b[0] > a[0] for a, b in pairwise(sound))


class PowerCut(Exception):
    """The process dies here: what was committed stays, nothing after it is written."""


def index_until_power_cut(media: Path, index: Path, commits: int) -> None:
    """Index `media`, the process dying after `commits` commits (what they wrote stays)."""
    real = CatalogWriter.commit
    done: list[int] = []

    def commit(self: CatalogWriter, batch, replaced):  # type: ignore[no-untyped-def]
        if len(done) == commits:
            raise PowerCut
        done.append(1)
        real(self, batch, replaced)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(PowerCut):
        patch.setattr(CatalogWriter, "commit", commit)
        with Library.open(index, model="hash-test") as lib:
            lib.index([media])


def test_a_film_left_part_way_is_searchable_for_what_is_in_and_shown_as_part_way(tmp_path: Path) -> None:
    media = tmp_path / "media"
    path = long_film(media / "film.mp4")
    index = tmp_path / "idx"
    index_until_power_cut(media, index, 2)
    with Library.open(index, readonly=True) as lib:
        assert lib.item(path).indexed_until == 2 * PART
        [film_] = lib.stats().partial
        assert (film_.path, film_.indexed_until) == (str(path), 2 * PART)
        assert film_.duration == pytest.approx(180.0, abs=0.1)
        blue = lib.search("blue", kinds=["video"], k=1)[0]  # shots at 12 s and 48 s: one is in
        assert blue.path == str(path) and 12.0 - 0.2 <= blue.start < 18.0 and not blue.moments
    item = CliRunner().invoke(app, ["info", str(path), "--index", str(index)])
    assert "indexed:  part-way, 00:40 of 03:00" in item.stdout, item.output
    summary = CliRunner().invoke(app, ["info", "--index", str(index)])
    assert f"part-way: {path}  00:40 of 03:00" in summary.stdout, summary.output

    with Library.open(index) as lib:
        report = lib.index([media])
        assert report.resumed == 1 and any("went on from 40 s" in note for note in report.notes)
        assert lib.stats().partial == []
        orange = lib.search("orange", kinds=["video"], k=1)[0]
        assert shot_colour(orange.start) == "orange"
    assert sorted(windows(index).values()) == clean_windows(media, tmp_path / "clean")


def test_a_film_changed_after_a_partial_run_starts_again_from_the_start(tmp_path: Path) -> None:
    media = tmp_path / "media"
    path = long_film(media / "film.mp4")
    index = tmp_path / "idx"
    index_until_power_cut(media, index, 3)
    assert indexed_until(index) == 3 * PART
    # Replaced by another film, shorter, other shots: nothing of the old one may survive.
    long_film(path, shots=10, colours=["green", "purple"])
    with Library.open(index) as lib:
        report = lib.index([media])
        assert (report.resumed, report.updated, report.failed) == (0, 1, 0)
        item = lib.item(path)
        assert item.indexed_until is None and item.duration == pytest.approx(60.0, abs=0.1)
        assert [round(start) for start, _ in item.moments] == [0, 6, 12, 18, 20, 24, 30, 36, 40, 42, 48, 54]
    assert sorted(windows(index).values()) == clean_windows(media, tmp_path / "clean")


def test_a_film_moved_while_part_way_goes_on_at_its_new_path(tmp_path: Path) -> None:
    media = tmp_path / "media"
    path = long_film(media / "film.mp4", shots=12)
    index = tmp_path / "idx"
    index_until_power_cut(media, index, 1)
    (media / "kept").mkdir()
    moved = path.rename(media / "kept" / "film.mp4")
    with Library.open(index) as lib:
        report = lib.index([media])
        assert (report.moved, report.resumed, report.removed) == (1, 1, 0)
        assert lib.item(moved).indexed_until is None and lib.stats().items == {"video": 1}
    assert sorted(windows(index).values()) == clean_windows(media, tmp_path / "clean")


def test_an_older_catalog_is_upgraded_in_place_with_its_items_whole(tmp_path: Path) -> None:
    from mmsearch.store.catalog_items import ItemFacts

    path = tmp_path / "catalog.db"
    catalog = Catalog(path)
    catalog.write_item(ItemFacts(str(tmp_path / "a.mp4"), str(tmp_path), "video", 1, 1, "h"), None)
    catalog.db.execute("ALTER TABLE items DROP COLUMN indexed_until")
    catalog.db.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    catalog.db.conn.commit()
    catalog.close()
    upgraded = Catalog(path)
    assert upgraded.schema_version() == SCHEMA_VERSION == 8
    row = upgraded.item_by_path(str(tmp_path / "a.mp4"))
    assert row is not None and row.status == "ok" and not row.partial
    upgraded.close()


def test_parts_split_a_soundtrack_without_losing_or_repeating_a_sample() -> None:
    from mmsearch.ingest_video import _SoundParts

    signal_ = np.arange(10 * 100, dtype=np.float32)  # 10 s at 100 Hz, in blocks of 0.7 s
    blocks = [signal_[i : i + 70] for i in range(0, len(signal_), 70)]
    parts = _SoundParts(blocks, 100, 0.0)
    cut = [np.concatenate(list(parts.until(end)) or [np.zeros(0, np.float32)]) for end in (3.0, 6.0, None)]
    assert [len(c) for c in cut] == [300, 300, 400]
    assert np.array_equal(np.concatenate(cut), signal_)
    resumed = _SoundParts(blocks, 100, 6.0)
    assert np.array_equal(np.concatenate(list(resumed.until(None))), signal_[600:])


def test_keyframes_from_a_mark_are_those_a_whole_pass_chooses_there(tmp_path: Path) -> None:
    from mmsearch.media.video import keyframes

    path = long_film(tmp_path / "film.mp4", shots=12)  # 72 s; x264 puts a keyframe every 25 s
    whole = [(k.time, np.asarray(k.image)) for k in keyframes(str(path), part=PART)]
    for mark in (20.0, 40.0, 60.0):  # decoded from the keyframe before the mark, then dropped
        later = [(k.time, np.asarray(k.image)) for k in keyframes(str(path), start=mark, part=PART)]
        expected = [(t, image) for t, image in whole if t >= mark]
        assert [t for t, _ in later] == [t for t, _ in expected] and later[0][0] == mark
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(later, expected))
