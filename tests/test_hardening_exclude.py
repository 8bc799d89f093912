"""Class 3 — excluding and forgetting: removal sticks, glob exclusions, `.mmsearchignore`."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import COLOURS, make_image

from mmsearch import Library, NotIndexedError, QueryError


def indexed(lib: Library) -> set[str]:
    return {Path(h.path).relative_to(lib_root(lib)).as_posix() for h in lib.search("red blue green yellow bread garden", k=100, min_score=-1)}


def lib_root(lib: Library) -> Path:
    return Path(lib.stats().roots[0])


def test_removed_subfolder_stays_removed_and_is_listed(tmp_path: Path, media: Path) -> None:
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([media])
        assert lib.remove(media / "photos") == 3
        report = lib.index()
        assert report.added == 0
        assert not any(p.startswith("photos/") for p in indexed(lib))
        assert lib.stats().exclusions == [str(media / "photos")]
        # Naming it again includes it again.
        assert lib.index([media / "photos"]).added == 3
        assert lib.stats().exclusions == []


def test_removed_file_stays_removed(tmp_path: Path, media: Path) -> None:
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([media])
        lib.remove(media / "red.png")
        lib.index()
        assert "red.png" not in indexed(lib)


def test_glob_exclusions_forget_now_and_later_and_include_undoes(tmp_path: Path, media: Path) -> None:
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([media])
        assert lib.exclude(["*.md", "photos/*.webp"]) == 2
        make_image(media / "new" / "x.webp", COLOURS["red"])
        (media / "new" / "todo.md").write_text("Buy bread.\n")
        lib.index()
        found = indexed(lib)
        assert "notes/bread.md" not in found and "photos/green.webp" not in found
        assert "new/x.webp" in found and "new/todo.md" not in found
        assert sorted(lib.exclusions()) == ["*.md", "photos/*.webp"]
        lib.include("*.md")
        lib.index()
        assert {"notes/bread.md", "new/todo.md"} <= indexed(lib)
        with pytest.raises(NotIndexedError, match="not excluded"):
            lib.include("*.md")
        with pytest.raises(QueryError, match="empty"):
            lib.exclude(" ")


def test_mmsearchignore_works_like_gitignore(tmp_path: Path, media: Path) -> None:
    (media / ".mmsearchignore").write_text("# drafts and scans\n*.bmp\nnotes/\n")
    (media / "photos" / ".mmsearchignore").write_text("*.jpg\n!blue.jpg\n*.webp\n")
    with Library.open(tmp_path / "idx", model="hash-test") as lib:
        lib.index([media])
        assert indexed(lib) == {"red.png", "photos/blue.jpg"}
        (media / "photos" / ".mmsearchignore").unlink()
        lib.index()
        assert indexed(lib) == {"red.png", "photos/blue.jpg", "photos/green.webp"}
        (media / ".mmsearchignore").write_text("red.png\n")  # ignoring later drops it
        report = lib.index()
        assert report.removed == 1
        assert "red.png" not in indexed(lib)
