"""Class 1 — paths: one canonical form, so the same file reached by two routes is one item."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils

from mmsearch import Library
from mmsearch.encoders.registry import resolve_model
from mmsearch.media.paths import canonical_path
from mmsearch.store.catalog import Catalog
from mmsearch.store.catalog_schema import MIGRATIONS, SCHEMA_VERSION


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mmsearch", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def item_paths(index: Path) -> list[str]:
    with sqlite3.connect(index / "catalog.db") as db:
        return [r[0] for r in db.execute("SELECT path FROM items ORDER BY path")]


def test_relative_root_from_another_folder_is_stored_once_and_rescans_cheaply(
    tmp_path: Path, media: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    index = tmp_path / "idx"
    first = run_cli("index", "../media", "--index", str(index), "--model", "hash-test", cwd=elsewhere)
    assert first.returncode == 0, first.stderr
    assert "6 added" in first.stdout
    again = run_cli("index", "../elsewhere/../media/", "--index", str(index), cwd=elsewhere)
    assert "0 added" in again.stdout and "7 unchanged" in again.stdout, again.stdout
    (media / "red.png").unlink()
    third = run_cli("index", "--index", str(index), cwd=elsewhere)
    assert "1 removed" in third.stdout, third.stdout
    removed = run_cli("remove", "../media/notes", "--index", str(index), cwd=elsewhere)
    assert removed.returncode == 0 and "Removed 2" in removed.stdout, removed.stdout + removed.stderr
    with Library.open(index, create=False) as lib:
        assert lib.stats().roots == [str(media)]


def test_symlinked_folder_and_real_folder_are_one_set_of_items(tmp_path: Path, media: Path) -> None:
    link = tmp_path / "link-to-media"
    link.symlink_to(media, target_is_directory=True)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([link])
        report = lib.index([media, str(media) + "/", media / "photos" / ".."])
        assert report.added == 0 and report.encoded == 0
        assert lib.stats().roots == [str(media)]
        paths = item_paths(tmp_path / "idx")
        assert len(paths) == len(set(paths)) == 7  # 6 indexed + the broken JPEG
        assert all(p.startswith(str(media) + "/") for p in paths)
        hits = lib.search(image=link / "red.png", k=1)
        assert hits[0].path == str(media / "red.png")


def test_symlink_inside_a_root_to_a_file_already_indexed_is_not_a_second_item(
    tmp_path: Path, media: Path
) -> None:
    (media / "again.png").symlink_to(media / "red.png")
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([media])
        reds = [h for h in lib.search("red", k=50, min_score=0.9)]
        assert [Path(h.path).name for h in reds] == ["red.png"]


def test_canonical_path_expands_home_resolves_dots_links_and_trailing_slashes(
    tmp_path: Path, monkeypatch: object
) -> None:
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(real)
    assert canonical_path(tmp_path / "alias" / "sub" / ".." / "sub/") == str(real / "sub")
    assert canonical_path(str(tmp_path / "real") + "//") == str(real)
    assert canonical_path(tmp_path / "not-there" / ".." / "x") == str(tmp_path / "x")
    os.environ["HOME"] = str(tmp_path)
    assert canonical_path("~/real") == str(real)


def test_old_catalog_with_unnormalised_root_is_migrated(tmp_path: Path, media: Path) -> None:
    """A schema-1 catalog (as the first release wrote it, root stored as typed) opens, migrates
    step by step to the current schema, and indexes into one canonical root."""
    index = tmp_path / "idx"
    index.mkdir()
    db = sqlite_utils.Database(index / "catalog.db")
    MIGRATIONS[0](db)
    db["meta"].insert_all(
        [
            {"key": "schema_version", "value": "1"},
            {"key": "model", "value": json.dumps(resolve_model("hash-test").to_json())},
        ]
    )
    db["roots"].insert({"path": str(media / "photos" / ".."), "added_at": 0.0})
    db.close()
    catalog = Catalog(index / "catalog.db")
    assert catalog.roots() == [str(media)]
    assert catalog.schema_version() == SCHEMA_VERSION
    catalog.close()
    with Library.open(index) as lib:
        assert lib.index().added == 6
        assert lib.index().encoded == 0
        assert lib.stats().roots == [str(media)]


def test_other_letter_case_on_a_case_insensitive_file_system_is_one_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linux file systems are case-sensitive, so case-insensitivity (macOS, Windows) is
    simulated: `os.path.exists` answers as such a file system would."""
    real = tmp_path / "Photos" / "Trip 2019"
    real.mkdir(parents=True)
    (real / "IMG_0001.JPG").write_bytes(b"x")

    def exists_ignoring_case(path: str) -> bool:
        current = "/"
        for name in str(path).strip("/").split("/"):
            try:
                match = [e for e in os.listdir(current) if e.casefold() == name.casefold()]
            except OSError:
                return False
            if not match:
                return False
            current = os.path.join(current, match[0])
        return True

    monkeypatch.setattr(os.path, "exists", exists_ignoring_case)
    typed = str(tmp_path / "photos" / "TRIP 2019" / "img_0001.jpg")
    assert canonical_path(typed) == str(real / "IMG_0001.JPG")
    assert canonical_path(str(tmp_path / "PHOTOS")) == str(tmp_path / "Photos")
