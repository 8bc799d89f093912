"""Class 5 — read-only and damaged indexes: reading never writes, damage is detected and named
in one line that says what to do, `doctor` verifies everything and `--repair` rebuilds what the
catalog can rebuild, scores never leave [-1, 1]."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmsearch import IndexNotFoundError, Library, MmsearchError
from mmsearch.errors import IndexDamagedError, ReadOnlyIndexError


def build(tmp_path: Path, media: Path) -> Path:
    index = tmp_path / "idx"
    with Library.open(index, model="hash-test") as lib:
        lib.index([media])
    return index


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file's size and mtime, less SQLite's WAL bookkeeping (`-wal`, `-shm`), which a
    reader of a WAL database needs beside it and which hold no index data when no one writes."""
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.iterdir()
        if not p.name.endswith(("-wal", "-shm"))
    }


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mmsearch", *args], capture_output=True, text=True, timeout=120
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_searching_writes_nothing(tmp_path: Path, media: Path) -> None:
    index = build(tmp_path, media)
    before = snapshot(index)
    with Library.open(index, readonly=True) as lib:
        assert lib.search("red")[0].path == str(media / "red.png")
        lib.stats()
        with pytest.raises(ReadOnlyIndexError, match="read-only"):
            lib.index()
    result = cli("search", "red", "--index", str(index))
    assert result.returncode == 0 and "red.png" in result.stdout
    assert snapshot(index) == before


@pytest.fixture
def readonly_mount(tmp_path: Path) -> Path:
    """A read-only bind mount of a folder (skipped where this machine does not allow mounts)."""
    source, target = tmp_path / "rw", tmp_path / "ro"
    source.mkdir()
    target.mkdir()
    ok = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True).returncode == 0
    ok = ok and subprocess.run(
        ["mount", "-o", "remount,bind,ro", str(target)], capture_output=True
    ).returncode == 0
    if not ok:
        subprocess.run(["umount", str(target)], capture_output=True)
        pytest.skip("read-only bind mounts are not allowed here")
    yield source
    subprocess.run(["umount", str(target)], check=True)


def test_index_on_read_only_media_can_be_searched(
    tmp_path: Path, media: Path, readonly_mount: Path
) -> None:
    index = build(readonly_mount, media)  # built in the writable source folder
    mounted = tmp_path / "ro" / "idx"
    with Library.open(mounted) as lib:  # not asked for read-only: noticed from the media
        assert lib.readonly
        assert lib.search("red")[0].path == str(media / "red.png")
        with pytest.raises(ReadOnlyIndexError):
            lib.remove(media / "red.png")
    result = cli("search", "blue", "--index", str(mounted))
    assert result.returncode == 0 and "blue.jpg" in result.stdout, result.stderr
    assert index.exists()


def test_damaged_catalog_is_one_clear_line(tmp_path: Path, media: Path) -> None:
    index = build(tmp_path, media)
    for name in ("catalog.db-wal", "catalog.db-shm"):
        (index / name).unlink(missing_ok=True)
    (index / "catalog.db").write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(IndexDamagedError, match="damaged"):
        Library.open(index)
    line = one_line_error(cli("search", "red", "--index", str(index)))
    assert "catalog.db" in line and "backup" in line


def test_zero_byte_catalog_is_not_recreated_by_a_reading_command(tmp_path: Path, media: Path) -> None:
    index = build(tmp_path, media)
    for name in ("catalog.db-wal", "catalog.db-shm"):
        (index / name).unlink(missing_ok=True)
    (index / "catalog.db").write_bytes(b"")
    line = one_line_error(cli("search", "red", "--index", str(index)))
    assert "0 bytes" in line
    line = one_line_error(cli("index", str(media), "--index", str(index), "--model", "offline-fast"))
    assert "0 bytes" in line
    assert (index / "catalog.db").stat().st_size == 0
    with pytest.raises(IndexNotFoundError):
        Library.open(tmp_path / "never-made", readonly=True)
    assert not (tmp_path / "never-made").exists()


def flip_bytes(path: Path, offset: int, count: int = 64) -> None:
    """Damage a file in place, keeping its size and modification time."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    for i in range(offset, min(offset + count, len(data))):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("where", ["header", "vectors"])
def test_damaged_vector_file_with_unchanged_size_and_mtime(
    tmp_path: Path, media: Path, where: str
) -> None:
    index = build(tmp_path, media)
    faiss_file = index / "visual.faiss"
    flip_bytes(faiss_file, 0 if where == "header" else faiss_file.stat().st_size // 2)
    with Library.open(index, readonly=True) as lib:
        hits = lib.search(image=media / "photos" / "blue.jpg", k=10)
        assert hits[0].path == str(media / "photos" / "blue.jpg")
        assert all(-1.0 <= h.score <= 1.0 for h in hits)
        assert lib._spaces.rebuilt == ["visual"]
        assert any("visual.faiss" in p for p in lib.check())
    report = cli("doctor", "--index", str(index))
    assert report.returncode == 1 and "visual.faiss" in report.stdout + report.stderr
    repaired = cli("doctor", "--repair", "--index", str(index))
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    with Library.open(index) as lib:
        assert lib.check() == []


@pytest.mark.parametrize(
    "manifest", ['{"spaces": []}', '[1, 2]', '{"spaces": {"visual": {"factory": 3}}}', "{"]
)
def test_manifest_of_the_wrong_shape_is_rebuilt_not_a_crash(
    tmp_path: Path, media: Path, manifest: str
) -> None:
    index = build(tmp_path, media)
    (index / "manifest.json").write_text(manifest)
    result = cli("search", "red", "--index", str(index))
    assert result.returncode == 0 and "red.png" in result.stdout, result.stderr
    with Library.open(index) as lib:
        lib.index()  # a writer saves a good manifest again
    assert isinstance(json.loads((index / "manifest.json").read_text())["spaces"], dict)


def test_doctor_checks_catalog_integrity_and_counts(tmp_path: Path, media: Path) -> None:
    index = build(tmp_path, media)
    ok = cli("doctor", "--index", str(index))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    shutil.copy(index / "semantic.faiss", index / "visual.faiss")  # wrong file, wrong checksum
    with Library.open(index) as lib:
        problems = lib.check()
    assert any("visual.faiss" in p and "checksum" in p for p in problems)


def test_index_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("hello")
    with pytest.raises(MmsearchError, match="is a file"):
        Library.open(file)
