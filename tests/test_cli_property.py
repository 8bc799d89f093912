"""Property: whatever arguments arrive, the command line answers cleanly.

Hypothesis generates argument lists for search, info, index, remove and models: real options
with random or hostile values (huge numbers, nan, unicode, leading dashes, quotes, colons),
random text and stray tokens. For every one: no traceback, an exit code of 0, 1 or 2, and on
failure an error that is one `Error:` line (a query mistake may add its caret lines).

`index` and `remove` mutate, so they only ever see a throwaway index and copy of the media; the
working folder is an empty temporary one, so no relative path can reach anything real.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import COLOURS, make_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmsearch.cli import app

runner = CliRunner()

NASTY = [
    "", " ", "-", "--", "-k", "--index", "nan", "NaN", "inf", "-inf", "1e309", "1e9", "0", "-1",
    "1", "10000", "10001", "99999999999999999999999", "-0.0", "abc", "image", "text", "video",
    "IMAGE", ".jpg", "jpg", "j p g", "a b", "-night street", '2:"red car"', "0:cat", "1e9:cat",
    '99999:"red car"', '"unclosed', '""', "8:25", "2:-cat", "red", "猫 0:cat", "\t", "a\nb",
    "\x1b[31m", "\udcff.jpg", "--foo", "-x", "..", "ñ:niño", "\u202e", "😀" * 3,
]  # fmt: skip
"""Hand-picked hostile values, mixed with random text below."""

VALUES = st.one_of(
    st.sampled_from(NASTY),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(st.characters(blacklist_characters="\x00"), max_size=12),
)

SEARCH_VALUED = [
    "-k",
    "--top",
    "--min-score",
    "--kind",
    "--ext",
    "--folder",
    "--image",
    "-q",
    "--query",
]
SEARCH_FLAGS = ["--json", "--plain", "--help", "--bogus", "-z"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small hash-test index (read-only here), a throwaway index and an empty working folder."""
    root = tmp_path_factory.mktemp("property")
    media = root / "media"
    make_image(media / "red.png", COLOURS["red"])
    make_image(media / "blue.jpg", COLOURS["blue"])
    (media / "note.md").write_text("Bake the bread; water the garden.\n")
    scratch_media = root / "scratch-media"
    shutil.copytree(media, scratch_media)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMSEARCH_HOME", str(root / "home"))
        for index in (root / "idx", root / "scratch-idx"):
            args = ["index", str(media), "--index", str(index), "--model", "hash-test"]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
    (root / "cwd").mkdir()
    return {
        "media": media,
        "idx": root / "idx",
        "scratch_media": scratch_media,
        "scratch_idx": root / "scratch-idx",
        "cwd": root / "cwd",
        "missing": root / "missing",
    }


@st.composite
def pairs(draw: st.DrawFn, options: list[str], flags: list[str]) -> list[str]:
    """Random options, each valued one followed by a random value, plus stray flags."""
    out: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            out += [draw(st.sampled_from(options)), draw(VALUES)]
        else:
            out.append(draw(st.sampled_from(flags)))
    return out


@st.composite
def argv(draw: st.DrawFn, world: dict[str, Path]) -> list[str]:
    command = draw(
        st.sampled_from(["search", "search", "search", "info", "index", "remove", "models"])
    )
    if command == "search":
        args = draw(pairs(SEARCH_VALUED, SEARCH_FLAGS))
        if draw(st.booleans()):
            args.insert(draw(st.integers(0, len(args))), draw(VALUES))  # a positional query
        if draw(st.integers(0, 4)) == 0:
            args += ["--", draw(VALUES)]
        index = [] if draw(st.integers(0, 5)) == 0 else ["--index", str(world["idx"])]
        return [command, *index, *args]
    if command == "info":
        args = draw(pairs(["--index"], ["--errors", "--json", "--help", "--bogus"]))
        return [command, "--index", str(world["idx"]), *args]
    if command == "models":
        return [command, *draw(pairs(["--index"], ["--json", "--help", "-x"]))]
    # index and remove change the index: only a throwaway one, and only safe folders
    safe = [
        str(world["scratch_media"]),
        str(world["scratch_media"] / "red.png"),
        str(world["missing"]),
    ]
    folders = draw(st.lists(st.sampled_from(safe), max_size=2))
    if command == "index":
        args = draw(pairs(["--batch-size", "--model"], ["--json", "--help", "--nope"]))
    else:
        args = draw(pairs(["--index"], ["--help", "-r"]))
        args = [a for a in args if a != "--index"]  # a random value there would be a path to remove
        args = [a for a in args if a.startswith("-") and a not in ("-", "--")]
        folders += [draw(st.sampled_from(NASTY + [""]))] if draw(st.booleans()) else []
    return [command, *folders, *args, "--index", str(world["scratch_idx"])]


def check(result_args: list[str], result: Result) -> None:
    context = (result_args, result.exit_code, result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        context,
        result.exception,
    )
    assert "Traceback" not in result.output, context
    assert result.exit_code in (0, 1, 2), context
    if result.exit_code:
        lines = result.stderr.splitlines()
        if result_args[0] == "search" and lines and lines[0].startswith(("No results", "No matches")):
            assert result.exit_code == 1 and len(lines) == 1, context  # nothing found, said why
            return
        assert lines and lines[0].startswith("Error: "), context
        if len(lines) > 1:  # a query mistake: the query, a caret under the mistake, the fix
            assert len(lines) == 4 and lines[2].strip() == "^", context
        assert "internal error" not in result.stderr, context


@settings(
    max_examples=110,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_arguments_give_a_clean_answer(
    data: st.DataObject, world: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(world["cwd"])
    args = data.draw(argv(world), label="argv")
    check(args, runner.invoke(app, args))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=st.text(st.characters(blacklist_characters="\x00"), max_size=30))
def test_any_query_text_gives_a_clean_answer(query: str, world: dict[str, Path]) -> None:
    args = ["search", "--index", str(world["idx"]), "--", query]
    check(args, runner.invoke(app, args))
