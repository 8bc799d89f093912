"""Values at the boundary: every bad option, variable or config line is refused in one clean line.

Each test drives the real command line (in process through `CliRunner`, or as a subprocess where
the environment matters) and checks the exit code, that stderr is exactly one line naming the
value and the fix, and that no traceback leaks out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mmsearch.cli import app
from mmsearch.config import Settings, load_settings
from mmsearch.errors import ConfigError

runner = CliRunner()
MMSEARCH = Path(sys.executable).with_name("mmsearch")


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    result = runner.invoke(app, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def one_error_line(result: Result, code: int, *needles: str) -> str:
    """Assert exit `code` and exactly one `Error:` line on stderr holding every needle."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def idx(tmp_path: Path, media: Path) -> Path:
    index = tmp_path / "idx"
    result = invoke(["index", str(media), "--index", str(index), "--model", "hash-test"])
    assert result.exit_code == 0, result.output
    return index


# -- environment variables and the config file -------------------------------------------------


def test_bad_environment_variable_names_the_variable_the_range_and_the_config_file(
    tmp_path: Path, isolated_home: Path
) -> None:
    line = one_error_line(
        invoke(["info", "--index", str(tmp_path / "i")], env={"MMSEARCH_BATCH_SIZE": "abc"}),
        2,
        "MMSEARCH_BATCH_SIZE='abc'",
        "batch_size",
        "from 1 to 4096",
        str(isolated_home / "config.toml"),
    )
    assert "valid integer" in line


def test_bad_environment_variable_in_a_real_process(tmp_path: Path, media: Path) -> None:
    env = {**os.environ, "MMSEARCH_BATCH_SIZE": "abc"}
    proc = subprocess.run(
        [
            str(MMSEARCH),
            "index",
            str(media),
            "--index",
            str(tmp_path / "i"),
            "--model",
            "hash-test",
        ],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: MMSEARCH_BATCH_SIZE='abc'")
    assert not (tmp_path / "i").exists()


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("MMSEARCH_DEVICE", "gpu", "auto, cpu, cuda or cuda:N"),
        ("MMSEARCH_DECODE_WORKERS", "-1", "from 0 to 256"),
        ("MMSEARCH_EXACT_SEARCH_BELOW", "0", "at least 1"),
        ("MMSEARCH_MAX_TEXT_CHUNKS", "2000000", "from 1 to 1000000"),
        ("MMSEARCH_MAX_IMAGE_PIXELS", "0", "at least 1"),
        ("MMSEARCH_MAX_TEXT_BYTES", "many", "at least 1"),
        ("MMSEARCH_MODEL", "   ", "mmsearch models"),
    ],
)
def test_every_setting_has_a_range(tmp_path: Path, name: str, value: str, allowed: str) -> None:
    one_error_line(
        invoke(["info", "--index", str(tmp_path / "i")], env={name: value}),
        2,
        f"{name}={value!r}",
        allowed,
    )


def test_config_file_with_a_syntax_error_names_the_file_and_the_line(
    tmp_path: Path, isolated_home: Path
) -> None:
    config = isolated_home / "config.toml"
    config.write_text('model = "hash-test"\nbatch_size = \n')
    one_error_line(
        invoke(["info", "--index", str(tmp_path / "i")]),
        2,
        str(config),
        "line 2, column 14",
        "move the file away",
    )


def test_config_file_named_by_mmsearch_config_in_a_real_process(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("index = [unclosed\n")
    env = {**os.environ, "MMSEARCH_CONFIG": str(config)}
    proc = subprocess.run(
        [str(MMSEARCH), "search", "cat"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and str(config) in lines[0] and "not valid TOML" in lines[0]


def test_config_file_that_is_a_folder(tmp_path: Path, isolated_home: Path) -> None:
    (isolated_home / "config.toml").mkdir()
    one_error_line(
        invoke(["info", "--index", str(tmp_path / "i")]),
        2,
        "is a folder, not a file",
        "move it away",
    )


def test_config_file_value_out_of_range_names_the_line_and_the_file(
    tmp_path: Path, isolated_home: Path
) -> None:
    (isolated_home / "config.toml").write_text("batch_size = 0\n")
    one_error_line(
        invoke(["info", "--index", str(tmp_path / "i")]),
        2,
        "batch_size = 0 in the config file",
        str(isolated_home / "config.toml"),
        "from 1 to 4096",
    )


def test_missing_config_file_named_by_mmsearch_config(tmp_path: Path) -> None:
    one_error_line(
        invoke(["info"], env={"MMSEARCH_CONFIG": str(tmp_path / "nope.toml")}),
        2,
        "MMSEARCH_CONFIG=",
        "names no file",
    )


# -- options ------------------------------------------------------------------------------------


def test_index_option_naming_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    one_error_line(
        invoke(["search", "cat", "--index", str(afile)]),
        2,
        f"--index {afile} is a file, not an index folder",
        "give a folder path",
    )
    one_error_line(
        invoke(["info"], env={"MMSEARCH_INDEX": str(afile)}),
        2,
        f"MMSEARCH_INDEX={afile} is a file",
    )


@pytest.mark.parametrize("value", ["0", "5000", "abc"])
def test_batch_size_option_goes_through_the_same_validation(
    tmp_path: Path, media: Path, value: str
) -> None:
    result = invoke(
        [
            "index",
            str(media),
            "--index",
            str(tmp_path / "i"),
            "--model",
            "hash-test",
            "--batch-size",
            value,
        ]
    )
    one_error_line(result, 2, "--batch-size", value, "from 1 to 4096")
    assert not (tmp_path / "i" / "catalog.db").exists()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["-k", "0"], ["'-k' / '--top'", "0 is out of range", "from 1 to 10000"]),
        (["--top", "10001"], ["10001 is out of range", "from 1 to 10000"]),
        (["-k", "abc"], ["'abc' is not valid", "from 1 to 10000"]),
        (["-k", "99999999999999999999999"], ["from 1 to 10000"]),
        (["--min-score", "nan"], ["'--min-score'", "nan is not a score", "from -1 to 1"]),
        (["--min-score", "inf"], ["inf is not a score", "from -1 to 1"]),
        (["--min-score", "1.5"], ["1.5 is not a score"]),
        (["--min-score", "x"], ["'x' is not valid", "from -1 to 1"]),
        (["--kind", "spreadsheet"], ["'--kind'", "'spreadsheet' is not a kind", "image or text or audio or video"]),
        (["--ext", ""], ["'--ext'", "'' is not a file extension"]),
        (["--ext", "j p g"], ["'j p g' is not a file extension"]),
    ],
)
def test_bad_search_option_values(idx: Path, args: list[str], needles: list[str]) -> None:
    line = one_error_line(invoke(["search", "red", "--index", str(idx), *args]), 2, *needles)
    assert "see mmsearch search --help" in line


def test_known_kinds_and_extension_spellings_are_accepted(idx: Path) -> None:
    result = invoke(
        [
            "search",
            "red",
            "--index",
            str(idx),
            "--kind",
            "IMAGE",
            "--ext",
            ".PNG",
            "--min-score",
            "-1",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.stderr
    assert [Path(h["path"]).name for h in json.loads(result.stdout)] == ["red.png"]


# -- usage errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["search", "cat", "--foo"], ["No such option: --foo", "(see mmsearch search --help)"]),
        (["remove"], ["Missing argument", "(see mmsearch remove --help)"]),
        (["serch", "cat"], ["No such command 'serch'", "Did you mean 'search'"]),
        (["info", "a", "b"], ["unexpected extra argument", "(see mmsearch info --help)"]),
        (["--bogus"], ["No such option: --bogus", "(see mmsearch --help)"]),
        (
            ["search", "-night", "street"],
            ["No such option: -n", "mmsearch search -- '-night street'"],
        ),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], needles: list[str]) -> None:
    one_error_line(invoke(args), 2, *needles)


@pytest.mark.parametrize("command", [[], ["search"], ["index"], ["info"], ["remove"], ["models"]])
def test_help_is_still_multi_line_and_exits_0(command: list[str]) -> None:
    result = invoke([*command, "--help"])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) > 5 and not result.stderr


def test_unexpected_exception_is_one_line_naming_it(
    idx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmsearch.library import Library

    def boom(self: Library, *args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Library, "search", boom)
    one_error_line(
        invoke(["search", "red", "--index", str(idx)]),
        1,
        "internal error (RuntimeError: boom)",
        "run with -v for the traceback",
    )


def test_verbose_logs_the_traceback_of_an_unexpected_exception(
    idx: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mmsearch.library import Library

    def boom(self: Library, *args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Library, "search", boom)
    one_error_line(invoke(["-v", "search", "red", "--index", str(idx)]), 1, "internal error")
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


# -- the query ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "needles"),
    [
        ("0:cat dog", ["Weight 0", "0 < weight <= 100"]),
        ("1e9:cat", ["Weight 1e9", "0 < weight <= 100"]),
        ('street 99999:"red car"', ["Weight 99999", 'like 2:"red car"']),
        ('"red car', ["never closed"]),
        ('cat ""', ["empty"]),
    ],
)
def test_query_mistakes_point_at_the_mistake(idx: Path, query: str, needles: list[str]) -> None:
    result = invoke(["search", query, "--index", str(idx)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: ") and all(n in result.stderr for n in needles)
    assert lines[1] == f"  {query}" and lines[2].strip() == "^" and len(lines) == 4
    assert not result.stdout


def test_a_query_starting_with_a_minus_after_double_dash_or_with_query_option(idx: Path) -> None:
    positional = invoke(
        ["search", "--index", str(idx), "--min-score", "-1", "--json", "--", "-night red"]
    )
    assert positional.exit_code == 0, positional.stderr
    option = invoke(
        ["search", "-q", "-night red", "--index", str(idx), "--min-score", "-1", "--json"]
    )
    assert option.exit_code == 0, option.stderr
    assert json.loads(positional.stdout) == json.loads(option.stdout) != []


def test_query_given_twice_is_refused(idx: Path) -> None:
    one_error_line(invoke(["search", "red", "-q", "blue", "--index", str(idx)]), 2, "not both")


# -- output -------------------------------------------------------------------------------------


def test_file_names_with_tabs_and_newlines_print_as_one_escaped_line(
    tmp_path: Path, media: Path
) -> None:
    odd = media / "notes" / "odd\tna\nme\\x.txt"
    odd.write_text("Bread and garden notes, kept under a strange name.\n")
    index = tmp_path / "idx"
    assert (
        invoke(["index", str(media), "--index", str(index), "--model", "hash-test"]).exit_code == 0
    )
    args = ["search", "bread garden", "--index", str(index), "--min-score", "-1", "-k", "50"]
    hits = json.loads(invoke([*args, "--json"]).stdout)
    assert str(odd) in [h["path"] for h in hits]
    plain = invoke([*args, "--plain"])
    lines = plain.stdout.splitlines()
    assert len(lines) == len(hits)
    assert all(len(line.split("\t")) == 3 for line in lines)
    escaped = str(media / "notes") + "/odd\\tna\\nme\\\\x.txt"
    assert escaped in [line.split("\t")[2] for line in lines]


def test_the_table_escapes_file_names_too(
    tmp_path: Path, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = media / "odd\nname [bold].txt"
    odd.write_text("a note\n")
    index = tmp_path / "idx"
    assert (
        invoke(["index", str(media), "--index", str(index), "--model", "hash-test"]).exit_code == 0
    )
    monkeypatch.setattr("mmsearch.cli.searching.use_plain", lambda plain: False)
    result = invoke(
        ["search", "a note", "--index", str(index), "--min-score", "-1", "-k", "50"],
        env={"COLUMNS": "400"},
    )
    assert result.exit_code == 0, result.stderr
    assert "odd\\nname [bold].txt" in result.stdout


# -- the Python entry point ---------------------------------------------------------------------


def test_load_settings_and_with_overrides_validate(tmp_path: Path) -> None:
    assert load_settings(batch_size=64, index=None).batch_size == 64
    assert load_settings().max_text_chunks == 2000
    with pytest.raises(ConfigError, match=r"batch_size=0 is not valid .* from 1 to 4096"):
        load_settings(batch_size=0)
    with pytest.raises(ConfigError, match="from 1 to 4096"):
        Settings().with_overrides(batch_size=10_000)
    with pytest.raises(ConfigError, match="device"):
        Settings(device="tpu")
    assert Settings().with_overrides(device="CUDA:1").device == "cuda:1"
