"""Class 8 — content changes the stat check cannot see: `index --verify` re-hashes and
re-encodes what changed behind the same size and mtime."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner
from conftest import COLOURS, make_image

from mmsearch import Library
from mmsearch.cli import app


def swap_content_keeping_stat(target: Path, source: Path) -> None:
    st = target.stat()
    data = source.read_bytes()
    assert len(data) == st.st_size
    target.write_bytes(data)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_verify_catches_content_changed_behind_same_size_and_mtime(tmp_path: Path) -> None:
    media = tmp_path / "media"
    make_image(media / "a.bmp", COLOURS["red"])
    make_image(tmp_path / "b.bmp", COLOURS["blue"])  # BMP: same size for the same dimensions
    make_image(media / "c.bmp", COLOURS["green"])
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([media])
        swap_content_keeping_stat(media / "a.bmp", tmp_path / "b.bmp")
        plain = lib.index()
        assert plain.encoded == 0  # invisible to the stat check
        assert Path(lib.search("red", k=1)[0].path).name == "a.bmp"  # stale
        checked = lib.index(verify=True)
        assert (checked.updated, checked.encoded, checked.unchanged) == (1, 1, 1)
        assert Path(lib.search("blue", k=1)[0].path).name == "a.bmp"
        assert lib.search("red", min_score=0.9) == []


def test_verify_from_the_command_line(tmp_path: Path) -> None:
    media = tmp_path / "media"
    make_image(media / "a.bmp", COLOURS["red"])
    make_image(tmp_path / "b.bmp", COLOURS["blue"])
    runner = CliRunner()
    index = str(tmp_path / "idx")
    assert runner.invoke(app, ["index", str(media), "--index", index, "--model", "hash-test"]).exit_code == 0
    swap_content_keeping_stat(media / "a.bmp", tmp_path / "b.bmp")
    result = runner.invoke(app, ["index", "--verify", "--index", index])
    assert result.exit_code == 0 and "1 updated" in result.stdout, result.stdout
