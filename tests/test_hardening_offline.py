"""Class 2 — folders that vanish: a missing or emptied root is reported and skipped, its items
kept (offline) until it returns or the user forgets it; a renamed folder is a move."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import COLOURS, make_image

from mmsearch import Library


def names(hits: list) -> set[str]:
    return {Path(h.path).name for h in hits}


def two_roots(tmp_path: Path) -> tuple[Path, Path]:
    drive, home = tmp_path / "drive", tmp_path / "home"
    make_image(drive / "red.png", COLOURS["red"])
    make_image(drive / "trip" / "blue.png", COLOURS["blue"])
    make_image(home / "green.png", COLOURS["green"])
    return drive, home


def test_missing_root_is_skipped_kept_and_the_other_roots_are_updated(tmp_path: Path) -> None:
    drive, home = two_roots(tmp_path)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([drive, home])
        unplugged = tmp_path / "elsewhere"
        drive.rename(unplugged)  # the drive is unmounted
        make_image(home / "yellow.png", COLOURS["yellow"])
        report = lib.index()
        assert report.offline == [str(drive)]
        assert report.added == 1 and report.removed == 0
        assert any("mmsearch remove" in note and str(drive) in note for note in report.notes)
        assert names(lib.search("red", min_score=0.9)) == {"red.png"}  # still found
        assert lib.stats().offline_roots == [str(drive)]
        unplugged.rename(drive)  # plugged back in
        back = lib.index()
        assert back.offline == [] and back.encoded == 0 and back.unchanged == 4
        assert lib.stats().offline_roots == []


def test_emptied_mount_point_keeps_its_items(tmp_path: Path) -> None:
    drive, home = two_roots(tmp_path)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([drive, home])
        aside = tmp_path / "aside"
        shutil.move(drive, aside)
        drive.mkdir()  # what an unmounted mount point looks like
        report = lib.index()
        assert report.offline == [str(drive)] and report.removed == 0
        drive.rmdir()
        shutil.move(aside, drive)
        assert lib.index().encoded == 0


def test_missing_root_named_explicitly_still_updates_the_others(tmp_path: Path) -> None:
    drive, home = two_roots(tmp_path)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([drive, home])
        shutil.rmtree(drive)
        make_image(home / "purple.png", (130, 40, 160))
        report = lib.index([drive, home])
        assert report.offline == [str(drive)] and report.added == 1


def test_renamed_folder_is_recognised_by_content_not_re_encoded(tmp_path: Path) -> None:
    drive, home = two_roots(tmp_path)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([drive, home])
        renamed = tmp_path / "drive-2024"
        drive.rename(renamed)
        report = lib.index([renamed])
        assert (report.moved, report.encoded, report.added) == (2, 0, 0)
        assert sorted(lib.stats().roots) == sorted([str(renamed), str(home)])
        assert {h.path for h in lib.search("red", min_score=0.9)} == {str(renamed / "red.png")}


def test_forgetting_an_offline_root_for_good(tmp_path: Path) -> None:
    drive, home = two_roots(tmp_path)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([drive, home])
        shutil.rmtree(drive)
        lib.index()
        assert lib.remove(drive) == 2
        assert lib.stats().roots == [str(home)]
        assert names(lib.search("red", min_score=0.9)) == set()


def test_a_root_that_came_back_is_not_robbed_by_a_copy_elsewhere(tmp_path: Path) -> None:
    drive, home = two_roots(tmp_path)
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([drive, home])
        drive.rename(tmp_path / "away")
        lib.index()  # the drive is marked offline
        (tmp_path / "away").rename(drive)  # back, but only home is indexed next
        shutil.copy(drive / "red.png", home / "red-copy.png")
        report = lib.index([home])
        assert (report.added, report.moved) == (1, 0)
        assert {h.path for h in lib.search("red", min_score=0.9)} == {
            str(drive / "red.png"), str(home / "red-copy.png")
        }
