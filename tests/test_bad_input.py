"""Bad files in a real folder: each is skipped with its reason, the run goes on, nothing is lost."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from conftest import COLOURS, make_image
from PIL import Image

from mmsearch import Library
from mmsearch.config import Settings


def jpeg_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, COLOURS["blue"]).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    root = tmp_path / "messy"
    make_image(root / "good.png", COLOURS["red"])
    (root / "zero.jpg").write_bytes(b"")
    data = jpeg_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    (root / "text-named.jpg").write_text("I am a note, not a photo")
    make_image(root / "bomb.png", COLOURS["green"], size=(3000, 3000))
    (root / "binary.txt").write_bytes(b"\x00\x01\x02" * 100)
    (root / "latin1.txt").write_bytes("Crème brûlée for the café".encode("cp1252"))
    (root / ("long-" + "x" * 240 + ".png")).write_bytes((root / "good.png").read_bytes())
    bad_name = os.fsencode(root) + b"/caf\xe9.png"
    with open(bad_name, "wb") as f:
        f.write((root / "good.png").read_bytes())
    (root / "loop").mkdir()
    os.symlink(root, root / "loop" / "back-to-top")
    (root / "unreadable.jpg").write_bytes(data)
    return root


def test_every_bad_file_is_skipped_with_a_reason_and_good_ones_are_indexed(
    tmp_path: Path, messy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Running as root, chmod cannot make a file unreadable: make open() refuse it instead.
    real_open = open

    def refusing_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(file).endswith("unreadable.jpg"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)
    settings = Settings(max_image_pixels=5_000_000)  # bomb.png has 9 Mpx
    with Library.open(tmp_path / "index", model="hash-test", settings=settings) as lib:
        report = lib.index([messy])
        reasons = {Path(e.path).name: e.reason for e in lib.errors()}
        indexed = {Path(h.path).name for h in lib.search("red", k=50, min_score=-1)}

    assert indexed == {"good.png", "long-" + "x" * 240 + ".png", "latin1.txt"}
    assert "empty" in reasons["zero.jpg"]
    assert "truncated" in reasons["truncated.jpg"] or "corrupt" in reasons["truncated.jpg"]
    assert "corrupt" in reasons["corrupt.png"] or "truncated" in reasons["corrupt.png"]
    assert "not an image" in reasons["text-named.jpg"]
    assert "decompression bomb" in reasons["bomb.png"]
    assert "binary" in reasons["binary.txt"]
    assert "Permission denied" in reasons["unreadable.jpg"]
    assert "UTF-8" in reasons["caf\\xe9.png"]
    assert any("symlink loop" in r for r in reasons.values())
    assert report.failed == len(reasons)


def test_a_good_index_survives_a_later_run_over_bad_files(tmp_path: Path, messy: Path) -> None:
    good = tmp_path / "good"
    make_image(good / "blue.png", COLOURS["blue"])
    with Library.open(tmp_path / "index", model="hash-test") as lib:
        lib.index([good])
        lib.index([messy])
        top = lib.search("blue", k=2)  # blue.png and the equally blue unreadable.jpg
        assert "blue.png" in {Path(h.path).name for h in top}
        assert lib.stats().items["image"] >= 3
