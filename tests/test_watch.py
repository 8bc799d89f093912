"""Live folders: a watcher thread keeps the index in step with files added, saved, moved, deleted."""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import COLOURS, make_image

from mmsearch import IndexReport, Library
from mmsearch.config import Settings
from mmsearch.watch import FolderWatcher, WatchBatch, WatchNotice

MODEL = "hash-test"
WAIT = 20.0  # generous: the machine is shared; a pass never waits this long


class Running:
    """A `Library.watch` in a thread, with its batches and notices collected."""

    def __init__(self, lib: Library, folders: list[Path] | None) -> None:
        self.lib = lib
        self.stop = threading.Event()
        self.batches: queue.Queue[WatchBatch] = queue.Queue()
        self.notices: list[WatchNotice] = []
        self.error: BaseException | None = None
        self.started = threading.Event()

        def on_batch(batch: WatchBatch) -> None:
            self.batches.put(batch)
            self.started.set()

        def run() -> None:
            try:
                lib.watch(folders, stop=self.stop, on_batch=on_batch, on_notice=self.notices.append)
            except Exception as exc:  # noqa: BLE001 - surfaced by the test
                self.error = exc
                self.started.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self.started.wait(WAIT) and self.error is None, self.error
        first = self.batches.get_nowait()
        assert first.reason == "start"
        time.sleep(0.3)  # the event source is up (inotify watches are added synchronously)

    def next_batch(self) -> WatchBatch:
        return self.batches.get(timeout=WAIT)

    def until(self, done: Callable[[], bool]) -> list[WatchBatch]:
        """Batches until `done()` holds (checked after each one)."""
        seen = []
        deadline = time.monotonic() + WAIT
        while not done():
            assert time.monotonic() < deadline, f"not done after {WAIT}s: {seen}"
            try:
                seen.append(self.batches.get(timeout=0.5))
            except queue.Empty:
                pass
        return seen

    def quiet(self, seconds: float) -> list[WatchBatch]:
        """Batches arriving within `seconds` (expected: none)."""
        time.sleep(seconds)
        out = []
        while not self.batches.empty():
            out.append(self.batches.get_nowait())
        return out

    def close(self) -> float:
        t = time.monotonic()
        self.stop.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        assert self.error is None, self.error
        return time.monotonic() - t


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    settings = Settings(watch_settle_seconds=0.3, watch_debounce_ms=300, watch_rescan_minutes=0)
    with Library.open(tmp_path / "index", model=MODEL, settings=settings) as library:
        yield library


@pytest.fixture
def watching(lib: Library, media: Path) -> Iterator[Running]:
    running = Running(lib, [media])
    yield running
    running.close()


def indexed(lib: Library) -> dict[str, str]:
    """Every indexed path -> its status ("ok" or "error")."""
    return {p: row.status for root in lib._catalog.roots() for p, row in lib._catalog.items_under(root).items()}


def content(lib: Library, path: Path) -> str:
    row = lib._catalog.item_by_path(str(path))
    if row is None:
        return ""
    found = lib._catalog.db.execute("SELECT content FROM texts WHERE item_id = ?", [row.id]).fetchone()
    return found[0] if found else ""


def has(lib: Library, path: Path) -> Callable[[], bool]:
    return lambda: indexed(lib).get(str(path)) == "ok"


def test_a_new_photo_is_found_by_itself_moments_later(lib: Library, watching: Running, media: Path) -> None:
    photo = make_image(media / "new" / "orange.png", (250, 140, 20), stripe=5)
    watching.until(has(lib, photo))
    hit = lib.search(image=photo, k=1)[0]
    assert hit.path == str(photo)


def test_atomic_save_gives_one_item_and_no_temp_item(lib: Library, watching: Running, media: Path) -> None:
    note = media / "notes" / "plan.md"
    temp = media / "notes" / "plan.md.tmp~"
    temp.write_text("# Plan\n\nBuy seeds and water the lettuce.\n")
    os.replace(temp, note)
    watching.until(has(lib, note))
    # An editor saving again: write a temp file beside it, then rename over it.
    other = media / "notes" / "plan.tmp.md"  # a supported name, so the watcher does see it
    other.write_text("# Plan\n\nBuy seeds, water the lettuce and paint the fence.\n")
    os.replace(other, note)
    watching.until(lambda: "paint the fence" in content(lib, note))
    watching.quiet(1.0)
    paths = indexed(lib)
    assert str(note) in paths and str(other) not in paths and str(temp) not in paths


def test_a_growing_copy_is_indexed_once_settled_with_its_final_content(
    lib: Library, watching: Running, media: Path
) -> None:
    doc = media / "notes" / "long.txt"
    with open(doc, "w") as f:
        for n in range(8):  # written over ~1.6 s, longer than the settle time each pause
            f.write(f"line {n} about volcanoes and lava\n" if n < 7 else "the end: penguins\n")
            f.flush()
            time.sleep(0.2)
    batches = watching.until(has(lib, doc))
    assert "penguins" in content(lib, doc)
    encoded = sum(b.report.encoded for b in batches)
    assert encoded == 1, f"a partial copy was encoded: {batches}"


def test_rename_and_move_keep_vectors_without_encoding(lib: Library, watching: Running, media: Path) -> None:
    before = lib._catalog.item_by_path(str(media / "photos" / "blue.jpg"))
    target = media / "elsewhere" / "sky.jpg"
    target.parent.mkdir()
    os.rename(media / "photos" / "blue.jpg", target)
    batches = watching.until(has(lib, target))
    assert str(media / "photos" / "blue.jpg") not in indexed(lib)
    assert sum(b.report.moved for b in batches) == 1
    assert sum(b.report.encoded for b in batches) == 0
    after = lib._catalog.item_by_path(str(target))
    assert before is not None and after is not None
    assert (after.id, after.hash) == (before.id, before.hash)
    assert lib.search(image=target, k=1)[0].path == str(target)


def test_a_folder_moved_out_and_back_in(lib: Library, watching: Running, media: Path, tmp_path: Path) -> None:
    photos = [str(p) for p in (media / "photos").iterdir()]
    outside = tmp_path / "outside-photos"
    shutil.move(media / "photos", outside)
    watching.until(lambda: not set(photos) & set(indexed(lib)))
    shutil.move(outside, media / "album")
    back = [str(media / "album" / Path(p).name) for p in photos]
    batches = watching.until(lambda: set(back) <= set(indexed(lib)))
    # Moved out then in again: found again; the content was encoded anew (it left the index).
    assert sum(b.report.added + b.report.moved for b in batches) == len(back)


def test_a_folder_moved_within_is_one_move(lib: Library, watching: Running, media: Path) -> None:
    os.rename(media / "photos", media / "pictures")
    names = ["blue.jpg", "green.webp", "yellow.bmp"]
    batches = watching.until(lambda: {str(media / "pictures" / n) for n in names} <= set(indexed(lib)))
    assert sum(b.report.moved for b in batches) == 3
    assert sum(b.report.encoded for b in batches) == 0
    assert not [p for p in indexed(lib) if "/photos/" in p]


def test_delete_forgets_the_file(lib: Library, watching: Running, media: Path) -> None:
    (media / "red.png").unlink()
    watching.until(lambda: str(media / "red.png") not in indexed(lib))


def test_exclusions_and_mmsearchignore_are_honoured(lib: Library, media: Path) -> None:
    lib.exclude("*.bmp")
    (media / "drafts").mkdir()
    (media / "drafts" / ".mmsearchignore").write_text("secret*\n")
    running = Running(lib, [media])
    try:
        make_image(media / "drafts" / "secret-plan.png", COLOURS["red"])
        make_image(media / "drafts" / "yellow2.bmp", COLOURS["yellow"])
        assert running.quiet(1.5) == []  # nothing relevant changed: no rescan at all
        kept = make_image(media / "drafts" / "public.png", COLOURS["green"])
        running.until(has(lib, kept))
        paths = indexed(lib)
        assert str(media / "drafts" / "secret-plan.png") not in paths
        assert str(media / "drafts" / "yellow2.bmp") not in paths
    finally:
        running.close()


def test_the_index_folder_is_never_followed(tmp_path: Path, media: Path) -> None:
    settings = Settings(watch_settle_seconds=0.2, watch_debounce_ms=200, watch_rescan_minutes=0)
    # The index lives inside the watched folder: its own writes must not trigger updates.
    with Library.open(media / "idx", model=MODEL, settings=settings) as lib:
        running = Running(lib, [media])
        try:
            (media / "idx" / "scratch.txt").write_text("written by the index, not the user\n")
            assert running.quiet(1.5) == []
            assert not [p for p in indexed(lib) if "/idx/" in p]
        finally:
            running.close()


def test_lost_events_fall_back_to_a_rescan(lib: Library, media: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An inotify overflow (or any failure of the event source) must not lose changes: the
    watcher says so once and rescans the folders, which finds what no event reported."""
    real = FolderWatcher._events
    calls = {"n": 0}

    def overflowing(self: FolderWatcher, roots: list[str]) -> Iterator[set[tuple[int, str]]]:
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(0.6)
            yield set()
            # Changes happen while events are being dropped, then the source fails.
            make_image(media / "unseen.png", COLOURS["blue"], stripe=3)
            raise RuntimeError("inotify event queue overflowed")
        yield from real(self, roots)

    monkeypatch.setattr(FolderWatcher, "_events", overflowing)
    running = Running(lib, [media])
    try:
        batches = running.until(has(lib, media / "unseen.png"))
        assert any(b.reason == "rescan" for b in batches)
        assert [n.kind for n in running.notices] == ["lost-events"]
    finally:
        running.close()


def test_watch_limit_falls_back_to_polling_with_one_clear_line(
    lib: Library, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = FolderWatcher._events

    def limited(self: FolderWatcher, roots: list[str]) -> Iterator[set[tuple[int, str]]]:
        if not self.polling:
            raise OSError(28, "OS file watch limit reached")
        yield from real(self, roots)

    monkeypatch.setattr(FolderWatcher, "_events", limited)
    monkeypatch.setattr(lib.settings, "watch_poll_ms", 100)
    running = Running(lib, [media])
    try:
        photo = make_image(media / "polled.png", COLOURS["green"], stripe=20)
        running.until(has(lib, photo))
        assert [n.kind for n in running.notices] == ["watch-limit"]
        assert "sysctl fs.inotify.max_user_watches" in running.notices[0].message
    finally:
        running.close()


def test_stop_returns_promptly_and_idle_does_nothing(lib: Library, watching: Running) -> None:
    assert watching.quiet(1.0) == []
    assert watching.close() < 2.0


def test_the_service_follows_the_folders_and_its_searches_see_new_files(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from server_helpers import indexed_folder

    from mmsearch.server import ServiceConfig, make_app

    index, media = indexed_folder(tmp_path)
    settings = Settings(watch_settle_seconds=0.3, watch_rescan_minutes=0)
    with TestClient(make_app(index, settings=settings, config=ServiceConfig(watch=True))) as client:
        deadline = time.monotonic() + WAIT
        while not (client.get("/status").json()["watch"] or {}).get("last"):
            assert time.monotonic() < deadline, client.get("/status").json()
            time.sleep(0.1)
        assert client.get("/status").json()["watch"]["watching"] is True
        (media / "notes" / "kayak.md").write_text("Paddle the kayak across the fjord at dawn.\n")
        while True:
            hits = client.get("/search", params={"q": "kayak fjord", "k": 1}).json()["hits"]
            if hits and Path(hits[0]["path"]).name == "kayak.md":
                break
            assert time.monotonic() < deadline, "the new note was never found through the service"
            time.sleep(0.1)
        # /status tells of the update (just after its commit, which the search saw first).
        while client.get("/status").json()["watch"]["last"]["reason"] != "changes":
            assert time.monotonic() < deadline, client.get("/status").json()
            time.sleep(0.1)
    # Shutting the service down stops following (the thread is gone, nothing left running).
    assert not [t for t in threading.enumerate() if t.name == "mmsearch-watch"]


def test_a_service_without_watch_does_not_follow(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from server_helpers import indexed_folder

    from mmsearch.server import ServiceConfig, make_app

    index, _ = indexed_folder(tmp_path)
    with TestClient(make_app(index, settings=Settings(), config=ServiceConfig())) as client:
        assert client.get("/status").json()["watch"] is None


def test_a_file_that_vanished_while_read_and_came_back_is_indexed(
    lib: Library, watching: Running, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moved out while the batch read it and back (same size and time): not "no such file" for good."""
    import errno

    from mmsearch import ingest_decode
    from mmsearch.errors import MediaError

    real, failed = ingest_decode.read_bytes, []

    def read_once_gone(path: str) -> bytes:
        if path.endswith("boomerang.md") and not failed:
            failed.append(path)
            raise MediaError(path, f"cannot read: {os.strerror(errno.ENOENT)}")
        return real(path)

    monkeypatch.setattr(ingest_decode, "read_bytes", read_once_gone)
    note = media / "notes" / "boomerang.md"
    note.write_text("It always comes back to the thrower.\n")
    watching.until(has(lib, note))
    assert failed and lib.errors() == [e for e in lib.errors() if not e.path.endswith("boomerang.md")]


def test_the_watch_command_follows_and_stops_cleanly_on_ctrl_c(tmp_path: Path, media: Path) -> None:
    import json
    import signal
    import subprocess
    import sys

    index = tmp_path / "cli-index"
    cmd = [sys.executable, "-m", "mmsearch", "watch", str(media), "--index", str(index), "--model", MODEL, "--json"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
           "MMSEARCH_WATCH_SETTLE_SECONDS": "0.3"}
    out = tmp_path / "watch.jsonl"
    with open(out, "wb") as stdout:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + WAIT
        while not out.read_text().strip():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        time.sleep(0.5)
        (media / "notes" / "kite.md").write_text("Fly the kite on the windy hill.\n")
        while len(out.read_text().splitlines()) < 2:
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    start, change = (json.loads(line) for line in out.read_text().splitlines()[:2])
    assert start["reason"] == "start" and start["report"]["added"] == 6
    assert change["reason"] == "changes" and change["report"]["added"] == 1
    helped = subprocess.run([sys.executable, "-m", "mmsearch", "watch", "--help"], check=True,
                            capture_output=True, text=True, env=env)
    assert "Example:" in helped.stdout and "mmsearch watch ~/Pictures" in helped.stdout


def test_a_busy_index_is_retried_not_given_up(lib: Library, watching: Running, media: Path) -> None:
    import fcntl

    with open(lib.path / "write.lock", "w") as lock:  # as `mmsearch index` in another process
        fcntl.flock(lock, fcntl.LOCK_EX)
        note = media / "notes" / "queued.md"
        note.write_text("Waiting in the queue for the index.\n")
        time.sleep(1.5)
        assert str(note) not in indexed(lib)
        fcntl.flock(lock, fcntl.LOCK_UN)
    watching.until(has(lib, note))
    assert [n.kind for n in watching.notices] == ["busy"]


def test_a_vanished_file_left_by_an_earlier_run_is_indexed_when_watching_starts(
    lib: Library, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed after recording "no such file" for a file that is back: the watcher's
    catch-up indexes it (plain `index` would keep the error: same size and time)."""
    import errno

    from mmsearch import ingest_decode
    from mmsearch.errors import MediaError

    real = ingest_decode.read_bytes

    def gone(path: str) -> bytes:
        if path.endswith("boomerang.md"):
            raise MediaError(path, f"cannot read: {os.strerror(errno.ENOENT)}")
        return real(path)

    note = media / "notes" / "boomerang.md"
    note.write_text("It always comes back to the thrower.\n")
    monkeypatch.setattr(ingest_decode, "read_bytes", gone)
    lib.index([media])
    assert indexed(lib)[str(note)] == "error"
    monkeypatch.setattr(ingest_decode, "read_bytes", real)
    running = Running(lib, [media])
    try:
        assert indexed(lib)[str(note)] == "ok"
    finally:
        running.close()


def test_the_periodic_rescan_finds_what_no_event_reported(
    tmp_path: Path, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A network share sends no events: the periodic rescan (`watch_rescan_minutes`) finds it."""
    monkeypatch.setattr(FolderWatcher, "_relevant", lambda self, path, root: False)  # events lost
    settings = Settings(watch_settle_seconds=0.2, watch_rescan_minutes=1 / 60)  # every second
    with Library.open(tmp_path / "index", model=MODEL, settings=settings) as lib:
        running = Running(lib, [media])
        try:
            photo = make_image(media / "share" / "silent.png", COLOURS["yellow"], stripe=7)
            batches = running.until(has(lib, photo))
            assert any(b.reason == "periodic" for b in batches)
        finally:
            running.close()


def test_waking_from_sleep_rescans_every_folder(tmp_path: Path, media: Path) -> None:
    updates: list[list[str]] = []

    def update(roots: list[str], cancel: threading.Event | None) -> IndexReport:
        updates.append(roots)
        return IndexReport()

    watcher = FolderWatcher(
        [str(media)], str(tmp_path / "index"), list, Settings(watch_rescan_minutes=0), update, threading.Event()
    )
    watcher._check_clock()
    watcher._flush()
    assert updates == []  # no sleep, nothing to do
    wall, mono = watcher._clock
    watcher._clock = (wall - 3600, mono)  # an hour of wall time passed in no monotonic time
    watcher._check_clock()
    watcher._flush()
    assert updates == [[str(media)]]
