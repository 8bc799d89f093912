"""Videos through the whole engine with the weightless test model: a film is found by what is
seen in it, by what is heard in it and by an example picture, each hit saying when; its facts
come from the container; bad and odd files index what they can or are skipped with a reason,
and nothing else in the run is lost."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import COLOURS, make_image
from PIL import Image

from mmsearch import Library, ingest_decode
from mmsearch.cli import app
from mmsearch.encoders.hashing import COLOURS as PALETTE
from mmsearch.media.video import keyframes, probe_video, trim_bars

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from videokit import soundtrack, write_video

RATE = 16_000


def picture(colour: str, size: tuple[int, int] = (160, 90)) -> Image.Image:
    """A coloured picture with texture (a flat colour is a blank frame, skipped as such)."""
    image = Image.new("RGB", size, PALETTE[colour])
    dark = tuple(c // 2 for c in PALETTE[colour])
    for x in range(0, size[0], 16):
        image.paste(dark, (x, 0, x + 4, size[1]))
    return image


def tone(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def film(path: Path, colours: list[str], seconds: float = 3.0, sound: np.ndarray | None = None,
         **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, [(picture(c), seconds) for c in colours], size=(160, 90),
                       sound=sound, rate=RATE, preset="ultrafast", **options)


@pytest.fixture
def trip(tmp_path: Path) -> Path:
    """Red, blue and green shots of 3 s; a low hum for 4.5 s, then a high whistle."""
    sound = soundtrack([(tone(150, 4.5), 4.5), (tone(3000, 4.5), 4.5)], RATE)
    return film(tmp_path / "media" / "trip.mp4", ["red", "blue", "green"], sound=sound)


def test_a_video_is_found_by_what_is_seen_and_heard_at_the_right_moment(tmp_path: Path, trip: Path) -> None:
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        report = lib.index([trip.parent])
        assert (report.added, report.failed) == (1, 0)
        blue = lib.search("blue", kinds=["video"], k=1)[0]
        assert blue.path == str(trip) and blue.kind == "video"
        assert blue.start == pytest.approx(3.0, abs=0.6) and blue.end == pytest.approx(6.0, abs=0.6)
        green = lib.search("green", k=1)[0]
        assert green.start == pytest.approx(6.0, abs=0.6) and green.end == pytest.approx(9.0, abs=0.1)
        high = lib.search("high", kinds=["video"], k=1)[0]
        assert high.start is not None and high.start >= 3.0  # the whistle starts at 4.5 s
        example = lib.search(image=[_saved(picture("blue"), tmp_path / "blue.png")], k=1)[0]
        assert example.path == str(trip) and 2.4 <= example.start <= 3.6
        item = lib.item(trip)
        assert item.kind == "video" and item.duration == pytest.approx(9.0, abs=0.1)
        assert (item.width, item.height, item.frame_rate) == (160, 90, 25.0)
        assert item.codec == "h264 + aac" and item.sample_rate == RATE
        assert [round(start) for start, _ in item.moments] == [0, 3, 6]


def test_a_hit_lists_the_other_moments_that_match(tmp_path: Path) -> None:
    walk = film(tmp_path / "media" / "walk.mp4", ["blue", "red", "blue", "green"])
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([walk.parent])
        hit = lib.search("blue", k=1)[0]
        blue_shots = [(0.0, 3.0), (6.0, 9.0)]
        best = min(blue_shots, key=lambda shot: abs(shot[0] - hit.start))
        other = blue_shots[1 - blue_shots.index(best)]
        assert hit.moments, "the second blue shot is not listed"
        start, end, score = hit.moments[0]
        assert (start, end) == pytest.approx(other, abs=0.6) and score <= hit.scores["semantic"] + 1e-6
        for t0, t1, _ in hit.moments:  # none overlaps the best moment
            assert t1 <= hit.start + 1e-6 or t0 >= hit.end - 1e-6
    shown = CliRunner().invoke(
        app, ["search", "blue", "-k", "1", "--plain", "--moments", "--index", str(tmp_path / "idx")]
    )
    assert shown.exit_code == 0, shown.output
    fields = shown.stdout.strip().split("\t")
    assert fields[3].startswith(f"00:0{round(best[0])}") and fields[4].startswith(f"00:0{round(other[0])}")


def _saved(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


def test_filters_and_info_know_videos(tmp_path: Path, trip: Path) -> None:
    make_image(trip.parent / "red.png", COLOURS["red"], stripe=8)
    film(trip.parent / "short.mp4", ["red"], seconds=1.0)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([trip.parent])
        assert lib.stats().items == {"image": 1, "video": 2}
        assert {h.kind for h in lib.search("red", k=5)} == {"image", "video"}
        assert [Path(h.path).name for h in lib.search("red kind:video duration>5s", k=5)] == ["trip.mp4"]
        assert [Path(h.path).name for h in lib.search("red kind:films duration<=2s", k=5)] == ["short.mp4"]
    shown = CliRunner().invoke(app, ["info", str(trip), "--index", str(tmp_path / "idx")])
    assert shown.exit_code == 0, shown.output
    assert "video:    00:09, 25 fps, sound 16000 Hz" in shown.stdout
    assert "shots:    3 keyframes at 00:00  00:03  00:06" in shown.stdout


def test_mixed_folder_keeps_each_kind_findable(tmp_path: Path, trip: Path) -> None:
    root = trip.parent
    make_image(root / "photos" / "yellow.png", COLOURS["yellow"], stripe=8)
    (root / "notes").mkdir()
    (root / "notes" / "purple.md").write_text("purple\n")
    (root / "sounds").mkdir()
    soundfile.write(root / "sounds" / "hum.wav", tone(150, 2.0), RATE)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([root])
        assert lib.stats().items == {"image": 1, "text": 1, "audio": 1, "video": 1}
        assert Path(lib.search("yellow", k=1)[0].path).name == "yellow.png"
        assert Path(lib.search("purple", k=1)[0].path).name == "purple.md"
        assert Path(lib.search("blue", k=1)[0].path).name == "trip.mp4"
        low = lib.search(audio=[root / "sounds" / "hum.wav"], k=2)
        assert Path(low[0].path).name == "hum.wav" and Path(low[1].path).name == "trip.mp4"
        assert low[1].start is not None and low[1].start < 4.5  # the hum is the first 4.5 s


def test_a_long_film_streams_through_the_model_with_the_same_result(
    tmp_path: Path, trip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Library.open(tmp_path / "whole", model="hash-test") as lib:
        lib.index([trip.parent])
        whole = [(h.start, h.end) for h in lib.search("blue high", k=1)]
        whole_moments = lib.item(trip).moments
    monkeypatch.setattr(ingest_decode, "_DECODE_WHOLE_SECONDS", 1.0)
    with Library.open(tmp_path / "streamed", model="hash-test") as lib:
        lib.index([trip.parent])
        assert [(h.start, h.end) for h in lib.search("blue high", k=1)] == whole
        assert lib.item(trip).moments == whole_moments


def test_bad_and_odd_videos_index_what_they_can_and_lose_nothing(tmp_path: Path, trip: Path) -> None:
    root = trip.parent
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "noise.mkv").write_bytes(np.random.default_rng(0).bytes(20_000))
    (bad / "notes.mov").write_text("not a film at all\n")
    data = trip.read_bytes()
    # A web-style MP4 (index first) cut off half-way keeps its first half; a camera-style one
    # (index written last) cut off has no index at all and is skipped, saying so.
    for name, faststart in (("cut.mp4", True), ("cut-camera.mp4", False)):
        whole = film(tmp_path / name, ["red", "blue", "green", "yellow"], seconds=3.0,
                     sound=tone(150, 12.0), faststart=faststart).read_bytes()
        (bad / name).write_bytes(whole[: len(whole) // 2])
    only_sound = write_video(root / "memo.mp4", [], sound=tone(3000, 3.0), rate=RATE)
    silent = film(root / "silent.mp4", ["yellow"], seconds=2.0)
    turned = film(root / "phone.mp4", ["purple"], seconds=2.0, rotation=90)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        report = lib.index([root])
        reasons = dict(report.failures)
        for name in ("empty.mp4", "noise.mkv", "notes.mov"):
            assert str(bad / name) in reasons and reasons[str(bad / name)], reasons
        assert str(bad / "cut.mp4") not in reasons  # its first half is indexed
        assert "truncated" in reasons[str(bad / "cut-camera.mp4")]
        assert lib.search("red", kinds=["video"], k=5)
        cut = lib.item(bad / "cut.mp4")
        assert cut.status == "ok" and 1 <= len(cut.moments) <= 4
        memo = lib.item(only_sound)
        assert memo.kind == "video" and memo.moments == [] and memo.codec == "aac"
        heard = lib.search("high duration<4s", kinds=["video"], k=1)  # trip.mp4 whistles too
        assert Path(heard[0].path).name == "memo.mp4" and heard[0].start is not None
        assert lib.item(silent).status == "ok" and lib.item(silent).sample_rate is None
        phone = lib.item(turned)
        assert (phone.width, phone.height) == (90, 160) and phone.rotation == 270
        assert lib.item(trip).status == "ok" and trip.read_bytes() == data
        errors = CliRunner().invoke(app, ["info", "--errors", "--index", str(tmp_path / "idx")])
        assert "empty.mp4" in errors.stdout and "noise.mkv" in errors.stdout


def test_a_rotated_phone_video_is_searched_upright(tmp_path: Path) -> None:
    pixels = np.zeros((90, 160, 3), np.uint8)
    pixels[:, :80] = COLOURS["red"]
    pixels[:, 80:] = COLOURS["blue"]
    pixels[::8] //= 2  # texture: not a flat frame
    path = write_video(tmp_path / "phone.mp4", [(Image.fromarray(pixels), 1.0)], size=(160, 90),
                       rotation=90, noise=0, preset="ultrafast")
    info = probe_video(str(path))
    assert (info.width, info.height, info.rotation) == (90, 160, 270)
    (frame,) = list(keyframes(str(path)))
    upright = np.asarray(frame.image)
    assert upright.shape[:2] == (160, 90)
    # Turned as players show it: the left (red) half ends at the bottom.
    assert upright[10, 45, 2] > 150 and upright[-10, 45, 0] > 150


def test_black_bars_come_off_before_the_model_sees_a_frame() -> None:
    canvas = Image.new("RGB", (160, 90))
    canvas.paste(picture("green", (100, 90)), (30, 0))
    assert trim_bars(canvas).size == (100, 90)
    night = Image.new("RGB", (160, 90), (10, 10, 10))
    night.paste((200, 200, 200), (70, 40, 74, 44))  # a street lamp in the dark
    assert trim_bars(night).size == (160, 90)


def test_keyframes_one_per_shot_and_one_every_n_seconds_in_a_long_one(tmp_path: Path) -> None:
    from mmsearch.media.video import FrameChoice

    path = film(tmp_path / "shots.mp4", ["red", "blue"], seconds=6.0, zoom=1.0)
    times = [k.time for k in keyframes(str(path), FrameChoice(every=100.0))]
    assert [round(t) for t in times] == [0, 6]
    # A still shot repeats its frame: the repeats are left out, the shot's window covers them.
    assert [round(t) for t in (k.time for k in keyframes(str(path), FrameChoice(every=2.0)))] == [0, 6]
    moving = film(tmp_path / "zoom.mp4", ["red"], seconds=6.0, zoom=1.6)
    assert [round(k.time) for k in keyframes(str(moving), FrameChoice(every=2.0))] == [0, 2, 4]
    black = write_video(tmp_path / "fade.mp4", [(None, 2.0), (picture("red"), 2.0)], size=(160, 90),
                        preset="ultrafast")
    assert [round(k.time) for k in keyframes(str(black))] == [2]


def test_the_service_shows_the_shot_that_matched_and_plays_the_soundtrack(tmp_path: Path, trip: Path) -> None:
    import io
    import time

    from fastapi.testclient import TestClient

    from mmsearch.config import Settings
    from mmsearch.server import ServiceConfig, make_app

    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([trip.parent])
    app_ = make_app(tmp_path / "idx", settings=Settings(), config=ServiceConfig(folders=(str(trip.parent),)))
    with TestClient(app_) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        found = client.post("/search", json={"text": "green", "kinds": ["video"], "k": 1}).json()["hits"][0]
        assert found["kind"] == "video" and found["start"] == pytest.approx(6.0, abs=0.6)
        item = client.get(f"/items/{found['id']}").json()
        assert [round(s) for s, _ in item["moments"]] == [0, 3, 6] and item["frame_rate"] == 25.0
        shot = client.get(f"/items/{found['id']}/thumbnail", params={"size": 64, "t": found["start"]})
        assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg"
        r, g, b = Image.open(io.BytesIO(shot.content)).convert("RGB").resize((1, 1)).getpixel((0, 0))
        assert g > r and g > b  # the green shot, not the film's first (red) frame
        first = Image.open(io.BytesIO(client.get(f"/items/{found['id']}/thumbnail?size=64").content))
        r, g, b = first.convert("RGB").resize((1, 1)).getpixel((0, 0))
        assert r > g and r > b
        sound = client.get(f"/items/{found['id']}/preview", params={"start": 5, "seconds": 2})
        assert sound.status_code == 200 and sound.headers["content-type"] == "audio/wav"
        assert client.post("/search", json={"text": "x", "kinds": ["film"]}).status_code == 422


@pytest.mark.asyncio
async def test_the_tui_previews_the_matched_shot_and_opens_the_film_there(
    tmp_path: Path, trip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui_helpers import rendered, settle
    from tui_helpers import search as tui_search

    from mmsearch.config import Settings
    from mmsearch.tui import make_app, system

    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([trip.parent])
    started: list[list[str]] = []

    class Done:
        def poll(self) -> int:
            return 0

    monkeypatch.setattr(system, "launch", lambda command: started.append(list(command)) or Done())
    monkeypatch.setattr(system.shutil, "which", lambda name: f"/usr/bin/{name}" if name == "mpv" else None)
    app = make_app(tmp_path / "idx", settings=Settings(model="hash-test"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await tui_search(pilot, "green")
        app.query_one("#results").focus()
        await settle(pilot)
        hit = app.selected
        assert hit.kind == "video" and hit.start == pytest.approx(6.0, abs=0.6)
        body = rendered(app.query_one("#preview-body"))
        assert "shots:" in body and "00:06" in body and "match at" in body
        assert app.query(".preview-image")  # the shot itself is drawn
        await pilot.press("o")
        assert started and started[0][:2] == ["/usr/bin/mpv", f"--start={hit.start:.2f}"]
