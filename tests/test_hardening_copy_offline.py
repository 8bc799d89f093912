"""A copy is not a move while its source folder is only offline: the unplugged folder keeps
every item, the copy is indexed too, and both are found when the folder comes back."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import COLOURS, make_image

from mmsearch import Library


def test_a_copy_of_an_offline_folders_file_does_not_take_its_item(tmp_path: Path) -> None:
    drive, home = tmp_path / "drive", tmp_path / "home"
    make_image(drive / "red.png", COLOURS["red"])
    make_image(drive / "trip" / "blue.png", COLOURS["blue"])
    make_image(home / "green.png", COLOURS["green"])
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([drive, home])
        unplugged = tmp_path / "unplugged"
        drive.rename(unplugged)  # the drive is unmounted
        shutil.copy2(unplugged / "red.png", home / "red-copy.png")
        report = lib.index()
        assert report.offline == [str(drive)]
        assert report.moved == 0 and report.added == 1
        reds = {h.path for h in lib.search("red", min_score=0.9)}
        assert reds == {str(drive / "red.png"), str(home / "red-copy.png")}
        assert str(drive) in lib.stats().roots

        unplugged.rename(drive)  # plugged in again
        back = lib.index()
        assert back.offline == [] and back.added == 0 and back.removed == 0
        assert {h.path for h in lib.search("red", min_score=0.9)} == reds
        assert str(drive / "trip" / "blue.png") in {h.path for h in lib.search("blue", min_score=0.9)}


def test_a_folder_renamed_while_offline_is_still_a_move(tmp_path: Path) -> None:
    drive = tmp_path / "drive"
    make_image(drive / "red.png", COLOURS["red"])
    make_image(drive / "trip" / "blue.png", COLOURS["blue"])
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([drive])
        renamed = tmp_path / "drive-2024"
        drive.rename(renamed)
        report = lib.index([renamed])
        assert (report.moved, report.added) == (2, 0)
        assert lib.stats().roots == [str(renamed)]
