"""Class 6 — resources: a full disk ends in one line, leaves no temp files, loses nothing and
resumes; re-stamping touched files is batched; work per document is bounded and shows progress."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_image

from mmsearch import Library
from mmsearch.config import Settings
from mmsearch.errors import DiskFullError
from mmsearch.results import Progress
from mmsearch.store.catalog import Catalog


def images(folder: Path, n: int) -> None:
    for i in range(n):
        make_image(folder / f"d{i % 7}" / f"img{i:04d}.png", ((i * 37) % 256, (i * 11) % 256, 90), size=(32, 24))


@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    """A 1 MB tmpfs (skipped where this machine does not allow mounts)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("tmpfs mounts are not allowed here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_disk_full_is_one_line_keeps_committed_work_and_resumes(tmp_path: Path, small_disk: Path) -> None:
    media = tmp_path / "media"
    images(media, 1200)
    index = small_disk / "idx"
    cmd = [sys.executable, "-m", "mmsearch", "index", str(media), "--index", str(index),
           "--model", "hash-test", "--batch-size", "16"]
    full = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert full.returncode == 1, full.stdout + full.stderr
    assert "Traceback" not in full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "full" in errors[0] and "resume" in errors[0], full.stderr
    assert not list(index.glob("*.tmp"))
    with sqlite3.connect(index / "catalog.db") as db:
        committed = db.execute("SELECT count(*) FROM items WHERE status = 'ok'").fetchone()[0]
    assert 0 < committed < 1200
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    again = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f'"encoded": {1200 - committed}' in again.stdout
    with Library.open(index, readonly=True) as lib:
        assert lib.stats().items == {"image": 1200}
        probe = media / "d3" / "img0010.png"
        exact = [h.path for h in lib.search(image=probe, k=10) if h.score > 0.9999]
        assert str(probe) in exact  # (a few generated images share its colour)


def test_disk_full_while_saving_vectors_cleans_up(
    tmp_path: Path, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faiss

    def no_space(index: object, path: str) -> None:
        Path(path).write_bytes(b"partial")
        raise RuntimeError("Error in faiss::FileIOWriter: fwrite failed: No space left on device")

    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        monkeypatch.setattr(faiss, "write_index", no_space)
        with pytest.raises(DiskFullError, match="full; nothing committed was lost"):
            lib.index([media])
        assert not list((tmp_path / "idx").glob("*.tmp"))
        monkeypatch.undo()
        report = lib.index()
        assert report.encoded == 0 and report.unchanged == 7
        assert lib.search("red")[0].path == str(media / "red.png")


def test_touching_many_files_is_re_stamped_in_few_transactions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    media = tmp_path / "media"
    images(media, 400)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([media])
        for path in media.rglob("*.png"):
            os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
        transactions = 0
        write = Catalog.write

        def counting(self: Catalog):  # type: ignore[no-untyped-def]
            nonlocal transactions
            transactions += 1
            return write(self)

        monkeypatch.setattr(Catalog, "write", counting)
        report = lib.index()
        assert (report.unchanged, report.encoded) == (400, 0)
        assert transactions < 20
        monkeypatch.undo()
        assert lib.index().unchanged == 400  # the new times were stored: nothing to hash now


def test_a_huge_document_is_bounded_and_shows_progress_inside(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    words = [f"word{i}" for i in range(60_000)]
    words[50_000] = "zanzibar"
    (notes / "huge.txt").write_text(" ".join(words))
    (notes / "small.txt").write_text("a short note about bread")
    events: list[Progress] = []
    settings = Settings(max_text_chunks=40, batch_size=8)
    with Library.open(tmp_path / "idx", model="hash-test", settings=settings) as lib:
        lib.index([notes], progress=events.append)
        with sqlite3.connect(tmp_path / "idx" / "catalog.db") as db:
            chunks = db.execute(
                "SELECT count(*) FROM vectors v JOIN items i ON i.id = v.item_id WHERE i.name = 'huge.txt'"
            ).fetchone()[0]
        assert chunks == 40
        inside = [e for e in events if e.part_total]
        assert inside and inside[-1].part_done == inside[-1].part_total >= 40
        assert {Path(h.path).name for h in lib.search("zanzibar", min_score=-1)} >= {"huge.txt"}
