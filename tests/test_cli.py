"""The command line: every command documents itself; output is stable for people and programs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmsearch.cli import app

runner = CliRunner()
COMMANDS = ["index", "search", "info", "remove", "exclude", "include", "models", "doctor", "watch", "tune", "tui", "serve"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def index_media(media: Path, index: Path) -> None:
    result = runner.invoke(app, ["index", str(media), "--index", str(index), "--model", "hash-test"])
    assert result.exit_code == 0, result.output
    assert "6 added" in result.output and "1 skipped" in result.output


def test_index_then_search_prints_tab_separated_lines_when_piped(tmp_path: Path, media: Path) -> None:
    index_media(media, tmp_path / "idx")
    result = runner.invoke(app, ["search", "red", "--index", str(tmp_path / "idx"), "-k", "1"])
    assert result.exit_code == 0
    score, kind, path = result.output.strip().split("\t")
    assert (kind, path) == ("image", str(media / "red.png"))
    assert float(score) == pytest.approx(1.0, abs=1e-4)


def test_search_json_carries_path_score_and_kind(tmp_path: Path, media: Path) -> None:
    index_media(media, tmp_path / "idx")
    result = runner.invoke(
        app, ["search", "--image", str(media / "photos" / "blue.jpg"), "--index", str(tmp_path / "idx"), "--json"]
    )
    hits = json.loads(result.output)
    assert hits[0]["path"] == str(media / "photos" / "blue.jpg")
    assert hits[0]["kind"] == "image" and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_search_filters_from_the_command_line(tmp_path: Path, media: Path) -> None:
    index_media(media, tmp_path / "idx")
    args = ["search", "red blue bread", "--index", str(tmp_path / "idx"), "--min-score", "-1", "--json"]
    texts = json.loads(runner.invoke(app, [*args, "--kind", "text"]).output)
    assert {h["kind"] for h in texts} == {"text"}
    webp = json.loads(runner.invoke(app, [*args, "--ext", "webp"]).output)
    assert [Path(h["path"]).name for h in webp] == ["green.webp"]
    notes = json.loads(runner.invoke(app, [*args, "--folder", str(media / "notes")]).output)
    assert {Path(h["path"]).name for h in notes} == {"bread.md", "garden.txt"}


def test_info_lists_counts_and_errors(tmp_path: Path, media: Path) -> None:
    index_media(media, tmp_path / "idx")
    info = runner.invoke(app, ["info", "--index", str(tmp_path / "idx")])
    assert "model:    hash-test" in info.output
    assert "4 image" in info.output and "2 text" in info.output
    errors = runner.invoke(app, ["info", "--errors", "--index", str(tmp_path / "idx")])
    path, reason = errors.output.strip().split("\t")
    assert path == str(media / "broken.jpg") and reason


def test_remove_then_search_no_longer_shows_the_file(tmp_path: Path, media: Path) -> None:
    index_media(media, tmp_path / "idx")
    result = runner.invoke(app, ["remove", str(media / "red.png"), "--index", str(tmp_path / "idx")])
    assert result.output.strip() == "Removed 1 item(s)."
    out = runner.invoke(app, ["search", "red", "--index", str(tmp_path / "idx"), "--min-score", "-1"])
    assert str(media / "red.png") not in out.output


def test_errors_are_one_clean_line_and_a_nonzero_exit(tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "cat", "--index", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: No index at") and "Traceback" not in result.output
    result = runner.invoke(app, ["index", str(tmp_path), "--index", str(tmp_path / "i"), "--model", "nope"])
    assert result.exit_code == 1 and "Valid names" in result.output


def test_models_lists_presets_and_patterns() -> None:
    result = runner.invoke(app, ["models"])
    assert "offline-default" in result.output and "open_clip:ARCH@" in result.output


def test_index_location_comes_from_mmsearch_home(
    tmp_path: Path, media: Path, isolated_home: Path
) -> None:
    result = runner.invoke(app, ["index", str(media), "--model", "hash-test"])
    assert result.exit_code == 0
    assert (isolated_home / "default" / "catalog.db").is_file()


def test_index_location_comes_from_the_config_file(
    tmp_path: Path, media: Path, isolated_home: Path
) -> None:
    target = tmp_path / "from-config"
    (isolated_home / "config.toml").write_text(f'index = "{target}"\nmodel = "hash-test"\n')
    assert runner.invoke(app, ["index", str(media)]).exit_code == 0
    assert (target / "catalog.db").is_file()
