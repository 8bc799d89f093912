"""The quick settings reader of a cold search (`config_quick`) gives what the pydantic model
gives: the same values of the same types, the same index source, and for a bad value the same
one-line error, from any mix of config file, environment variables and options; and a cold
`mmsearch search` then loads neither pydantic nor sqlite_utils."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmsearch import config, config_quick
from mmsearch.cli import app
from mmsearch.config_fields import FIELDS
from mmsearch.config_sources import FIELD_CHECKS
from mmsearch.errors import ConfigError

MMSEARCH = Path(sys.executable).with_name("mmsearch")


def test_the_field_table_is_the_models() -> None:
    """`config_fields.py` is what `python -m mmsearch.config_quick` makes of the model now: a
    new or changed setting fails here until the table is generated again."""
    assert config_quick.field_table() == FIELDS
    assert (Path(config_quick.__file__).parent / "config_fields.py").read_text() == config_quick.table_source()


def test_the_model_reads_its_sources_as_the_quick_reader_assumes() -> None:
    model = config.Settings.model_config
    assert (model["env_prefix"], model["extra"], model["env_ignore_empty"]) == ("MMSEARCH_", "ignore", True)
    assert model.get("case_sensitive", False) is False
    assert model.get("env_nested_delimiter") is None and model.get("env_parse_none_str") is None
    validated = {
        field for v in config.Settings.__pydantic_decorators__.field_validators.values() for field in v.info.fields
    }
    assert validated == set(FIELD_CHECKS)


# -- the same outcome, whatever the sources say ----------------------------------------------------

HOSTILE_TEXTS = [
    "0", "-1", "+3", "064", " 64", "64 ", "1_000", "1e3", ".5", "5.", "inf", "nan", "-0.0", "True",
    "TRUE", "yes", "no", "on", "off", "t", "f", "FAISS", "HNSW", " CPU ", "gpu", "x", "  ", "None",
    "null", "[1]", '{"a": 1}', "1" * 25, "/nonexistent/index", "~/idx",
]  # fmt: skip
HOSTILE_VALUES: list[Any] = [
    0, -1, 10**20, 0.0, 2.0, math.inf, math.nan, True, False, "", " ", "64", "1.5", "true", "FAISS",
    " CUDA:0 ", "gpu", "/nonexistent/index", [1], {"a": 1},
]  # fmt: skip
ODD_NAMES = ["Batch_Size", "no_such_setting"]


def candidates(name: str) -> list[Any]:
    """Values near what `name` accepts: its default, each bound and its neighbours, its choices."""
    kind, _, default, rules = FIELDS[name]
    out: list[Any] = [] if default is None else [default]
    step = 1 if kind == "int" else 0.5
    for key in ("ge", "gt", "le", "lt"):
        if key in rules:
            out += [rules[key] - step, rules[key], rules[key] + step]
            if kind == "float":
                out.append(int(rules[key]))
    out += {
        "choice": rules.get("choices", []) + [c.lower() for c in rules.get("choices", [])],
        "bool": [True, False, 0, 1],
        "path": ["/nonexistent/x", "~/idx", "relative/idx"],
        "str": ["hash-test", " cpu ", "cuda:0", "auto", "", "x"],
        "int": [7, 7.0],
        "float": [0.25, 3],
    }[kind]
    return out


def as_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def pairs(hostile: list[Any], text: bool) -> st.SearchStrategy[dict[str, Any]]:
    def value_for(name: str) -> st.SearchStrategy[Any]:
        near = candidates(name) if name in FIELDS else [1, "x"]
        near_values = st.sampled_from([as_text(v) for v in near] if text else near)
        return st.one_of(near_values, near_values, near_values, st.sampled_from(hostile))

    names = st.sampled_from([*FIELDS, *FIELDS, *FIELDS, *ODD_NAMES])
    return st.lists(names.flatmap(lambda n: st.tuples(st.just(n), value_for(n))), max_size=4).map(dict)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if math.isinf(value) else repr(value))
    if isinstance(value, (int, str)):
        return json.dumps(value) if isinstance(value, str) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.upper().startswith("MMSEARCH_") and k != "MMSEARCH_HOME"}
    for key in saved:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        for key in values:
            os.environ.pop(key, None)
        os.environ.update(saved)


def outcome(load: Any, init: dict[str, Any]) -> tuple[Any, ...]:
    try:
        got = load(from_cli=True, **init)
    except ConfigError as exc:
        return ("error", str(exc))
    values = {name: (type(getattr(got, name)).__name__, getattr(got, name)) for name in FIELDS}
    return ("ok", values, got._index_source, got.index_path(), got.model_cache())


def same_outcome(home: Path, toml: dict[str, Any], env: dict[str, str], init: dict[str, Any]) -> tuple[Any, ...]:
    (home / "config.toml").write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in toml.items()))
    with environment(env):
        full = outcome(config.load_settings, init)
        quick = outcome(config_quick.load_settings, init)
    assert quick == full, (toml, env, init)
    return full


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    toml=pairs(HOSTILE_VALUES, text=False),
    env=st.tuples(
        pairs(HOSTILE_TEXTS, text=True),
        st.dictionaries(st.sampled_from([n.lower() for n in FIELDS]), st.sampled_from(["1", "x"]), max_size=1),
    ).map(
        lambda both: {f"MMSEARCH_{n.upper()}": v for n, v in both[0].items()}
        | {f"mmsearch_{n}": v for n, v in both[1].items()}  # another spelling, maybe of a set one
    ),
    index=st.sampled_from([None, None, "given", "a file"]),
    batch_size=st.sampled_from([None, None, None, 1, 64, 0, 5000]),
)
def test_the_quick_reader_reads_what_the_model_reads(
    isolated_home: Path, tmp_path: Path, toml: dict[str, Any], env: dict[str, str], index: str | None,
    batch_size: int | None,
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not an index")
    init = {"index": {None: None, "given": tmp_path / "idx", "a file": a_file}[index], "batch_size": batch_size}
    same_outcome(isolated_home, toml, env, init)


@pytest.mark.parametrize(
    ("toml", "env", "needle"),
    [
        ({}, {"MMSEARCH_RERANK_TOP_N": "1"}, "MMSEARCH_RERANK_TOP_N='1' is not valid for rerank_top_n"),
        ({}, {"MMSEARCH_DEVICE": "gpu"}, "MMSEARCH_DEVICE='gpu' is not valid for device"),
        ({"vector_store": "FAISS"}, {}, 'vector_store = "FAISS" in the config file'),
        ({"batch_size": 0}, {"MMSEARCH_BATCH_SIZE": "64"}, None),  # the variable wins: no error
        ({"index": "/nonexistent/from-file"}, {}, None),
    ],
)
def test_bad_values_give_the_models_message(
    isolated_home: Path, toml: dict[str, Any], env: dict[str, str], needle: str | None
) -> None:
    result = same_outcome(isolated_home, toml, env, {"index": None})
    if needle is None:
        assert result[0] == "ok"
    else:
        assert result[0] == "error" and needle in result[1], result


def test_plainly_valid_sources_are_read_without_the_model(isolated_home: Path, tmp_path: Path) -> None:
    (isolated_home / "config.toml").write_text('model = "hash-test"\nrerank_top_n = 20\nscore_calibration = false\n')
    with environment({"MMSEARCH_KEYWORD_FUSION": "rrf", "MMSEARCH_VIDEO_SCENE_CHANGE": "0.2"}):
        got = config_quick.load_settings(from_cli=True, index=tmp_path / "idx")
    assert isinstance(got, config_quick.QuickSettings)
    assert (got.model, got.rerank_top_n, got.score_calibration) == ("hash-test", 20, False)
    assert (got.keyword_fusion, got.video_scene_change, got.index_path()) == ("rrf", 0.2, tmp_path / "idx")
    assert got.with_overrides(batch_size=8).batch_size == 8  # anything more asks the full model
    assert isinstance(got.full(), config.Settings)


def test_a_broken_config_file_gives_the_same_error(isolated_home: Path) -> None:
    (isolated_home / "config.toml").write_text("batch_size = \n")
    with pytest.raises(ConfigError) as quick:
        config_quick.load_settings()
    with pytest.raises(ConfigError) as full:
        config.load_settings()
    assert str(quick.value) == str(full.value)


# -- the command -------------------------------------------------------------------------------


@pytest.fixture
def index(tmp_path: Path, media: Path) -> Path:
    folder = tmp_path / "idx"
    result = CliRunner().invoke(app, ["index", str(media), "--index", str(folder), "--model", "hash-test"])
    assert result.exit_code == 0, result.output
    return folder


def test_a_cold_search_loads_neither_pydantic_nor_sqlite_utils(index: Path) -> None:
    """`mmsearch search` as its own process: the same hits as in process, with neither library
    loaded (~100 ms of a cold search; ARCHITECTURE.md, "The CLI's cold path")."""
    code = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print('LOADED=' + ','.join(m for m in "
        "('pydantic', 'pydantic_settings', 'sqlite_utils') if m in sys.modules)))\n"
        f"sys.argv = ['mmsearch', 'search', 'red', '-k', '2', '--min-score', '-1', '--plain', '--index', {str(index)!r}]\n"
        "runpy.run_module('mmsearch', run_name='__main__')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    in_process = CliRunner().invoke(app, ["search", "red", "-k", "2", "--min-score", "-1", "--plain", "--index", str(index)])
    lines = out.stdout.splitlines()
    assert lines[-1] == "LOADED="
    assert lines[:-1] == in_process.stdout.splitlines() and len(lines) == 3


def test_a_cold_search_with_a_bad_variable_says_what_the_model_says(index: Path) -> None:
    env = {**os.environ, "MMSEARCH_RERANK_TOP_N": "0"}
    out = subprocess.run([str(MMSEARCH), "search", "red", "--index", str(index)], capture_output=True,
                         text=True, env=env, check=False)
    assert out.returncode == 2
    assert out.stderr == (
        "Error: MMSEARCH_RERANK_TOP_N='0' is not valid for rerank_top_n: Input should be greater than or "
        f"equal to 2. Use a whole number from 2 to 1000 (set it in the environment or in "
        f"{os.environ['MMSEARCH_HOME']}/config.toml).\n"
    )
