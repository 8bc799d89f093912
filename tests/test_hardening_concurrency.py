"""Class 4 — threads and processes: one `Library` shared by threads, readers that see what
another process committed, racing writers that get a clean busy message, and searches during
indexing served without rebuilding the vector index."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import COLOURS, make_image

from mmsearch import IndexBusyError, Library


def many_images(folder: Path, n: int, start: int = 0) -> list[Path]:
    paths = []
    for i in range(start, start + n):
        colour = ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)
        paths.append(make_image(folder / f"img{i:04d}.png", colour, size=(32, 24), stripe=i % 20))
    return paths


def cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mmsearch", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_one_library_shared_by_threads_while_another_thread_indexes(tmp_path: Path) -> None:
    make_image(tmp_path / "seed" / "red.png", COLOURS["red"])
    many_images(tmp_path / "media", 300)
    errors: list[BaseException] = []
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([tmp_path / "seed"])
        done = threading.Event()

        def searcher() -> None:
            while not done.is_set():
                try:
                    assert lib.search("red", k=5)
                    lib.search(image=tmp_path / "seed" / "red.png", k=3)
                    lib.stats()
                except BaseException as exc:  # every error is what this test measures
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=searcher) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            report = lib.index([tmp_path / "media"])
        finally:
            done.set()
            for t in threads:
                t.join()
        assert errors == []
        assert report.added == 300
        probe = tmp_path / "media" / "img0123.png"
        assert lib.search(image=probe, k=1)[0].path == str(probe)


def test_long_lived_library_sees_what_another_process_indexed(tmp_path: Path) -> None:
    make_image(tmp_path / "seed" / "red.png", COLOURS["red"])
    with Library.open(tmp_path / "idx", model="hash-test") as reader:
        reader.index([tmp_path / "seed"])
        assert reader.search("blue", min_score=0.9) == []
        make_image(tmp_path / "more" / "blue.png", COLOURS["blue"])
        proc = cli("index", str(tmp_path / "more"), "--index", str(tmp_path / "idx"))
        assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
        assert [Path(h.path).name for h in reader.search("blue", min_score=0.9)] == ["blue.png"]
        proc = cli("remove", str(tmp_path / "more" / "blue.png"), "--index", str(tmp_path / "idx"))
        assert proc.wait(120) == 0
        assert reader.search("blue", min_score=0.9) == []


def test_racing_index_runs_on_a_new_index_end_cleanly(tmp_path: Path) -> None:
    many_images(tmp_path / "media", 40)
    for attempt in range(5):
        index = tmp_path / f"idx{attempt}"
        procs = [
            cli("index", str(tmp_path / "media"), "--index", str(index), "--model", "hash-test")
            for _ in range(2)
        ]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert "Traceback" not in err and "database is locked" not in err, err
            assert proc.returncode == 0 or "Another mmsearch process is writing" in err, err
        with Library.open(index, create=False) as lib:
            assert lib.stats().items == {"image": 40}


def test_searches_during_indexing_do_not_rebuild_the_vector_index(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_image(tmp_path / "seed" / "red.png", COLOURS["red"])
    many_images(tmp_path / "media", 400)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([tmp_path / "seed"])
    proc = cli("index", str(tmp_path / "media"), "--index", str(tmp_path / "idx"), "--batch-size", "8")
    with caplog.at_level(logging.WARNING), Library.open(tmp_path / "idx", readonly=True) as reader:
        first = tmp_path / "media" / "img0000.png"  # committed in the first batch
        found_mid_run = False
        while proc.poll() is None:
            hits = reader.search(image=tmp_path / "seed" / "red.png", k=1)
            assert hits[0].path == str(tmp_path / "seed" / "red.png")
            if not found_mid_run and sum(reader.stats().items.values()) > 1:
                # Committed by the other process moments ago, and already searchable here.
                found_mid_run = reader.search(image=first, k=1)[0].path == str(first)
        assert proc.returncode == 0
        assert found_mid_run, "the reader never saw a batch while the indexer was running"
        probe = tmp_path / "media" / "img0399.png"
        assert reader.search(image=probe, k=1)[0].path == str(probe)
        assert reader._spaces.rebuilt == []
    assert not [r for r in caplog.records if "rebuilding" in r.getMessage()]


def test_a_second_writer_in_the_same_process_gets_the_busy_error(tmp_path: Path) -> None:
    many_images(tmp_path / "media", 5)
    with Library.open(tmp_path / "idx", model="hash-test") as lib, Library.open(tmp_path / "idx") as other:
        with lib._writing():
            with pytest.raises(IndexBusyError, match="wait for it to finish"):
                other.index([tmp_path / "media"])


def test_a_new_catalog_waits_for_another_process_that_opened_it_first(tmp_path: Path) -> None:
    """Two runs creating one index: switching the catalog to WAL needs the file to itself, and
    while the other run holds a write lock SQLite refuses at once (no busy wait: it would be a
    deadlock between two lock upgrades). CI hit it once in ~60 racing runs."""
    import sqlite3

    from mmsearch.store.catalog import Catalog

    path = tmp_path / "catalog.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the other run, writing before it switched to WAL
    threading.Timer(0.5, other.rollback).start()
    catalog = Catalog(path)
    try:
        assert catalog.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert catalog.schema_version() > 0
    finally:
        catalog.close()
        other.close()
