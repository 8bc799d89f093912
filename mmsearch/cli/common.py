"""What every command module shares: the output options, value checks, and the one place that
turns library errors into an `Error: ...` line and an exit code.

Only click and the standard library load here: a command pays for the engine (settings, the
catalog, models) when it runs, not when `mmsearch` starts.
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from mmsearch.errors import ConfigError, MmsearchError
from mmsearch.media.kinds import AUDIO, IMAGE, TEXT, VIDEO
from mmsearch.present import escape

PROG = "mmsearch"
MAX_K = 10_000
KINDS: tuple[str, ...] = (IMAGE, TEXT, AUDIO, VIDEO)
"""The kinds `--kind` accepts: what `mmsearch.media.kinds` defines."""

state = {"verbose": False, "process": False}
"""`verbose`: `-v` given, the group's last line of defence logs tracebacks. `process`: the
command runs in the console script, whose process ends with it (not in a test's `CliRunner`)."""

F = TypeVar("F", bound=Callable[..., Any])

ALLOWED = {
    "k": f"a whole number from 1 to {MAX_K}",
    "min_score": "a score from 0 to 1 (from -1 to 1 for raw cosines)",
}
"""What an option takes, for the message when a value is not even of the right type (options
that are settings, like --batch-size, are described by `mmsearch.config.allowed_values`)."""


def allowed_for(name: str | None) -> str | None:
    """What option `name` accepts, in words, or None when nothing more can be said."""
    if not name:
        return None
    if name in ALLOWED:
        return ALLOWED[name]
    from mmsearch.config import Settings, allowed_values

    return allowed_values(name) if name in Settings.model_fields else None


class Number(click.ParamType):
    """An int or float option whose bad value names itself and what is allowed:
    `'abc' is not valid (not a whole number); use a whole number from 1 to 10000`."""

    def __init__(self, kind: type[int | float]) -> None:
        self.kind = kind
        self.name = "integer" if kind is int else "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, self.kind) and not isinstance(value, bool):
            return value
        try:
            return self.kind(value)
        except (TypeError, ValueError):
            what = "not a whole number" if self.kind is int else "not a number"
            allowed = allowed_for(param.name if param else None)
            self.fail(
                f"{escape(repr(value))} is not valid ({what})" + (f"; use {allowed}" if allowed else ""),
                param,
                ctx,
            )


WHOLE = Number(int)
REAL = Number(float)
PATH = click.Path(path_type=Path)


def error_line(message: str) -> str:
    return "Error: " + escape(message, backslash=False)


def fail(message: str, code: int = 1) -> None:
    click.echo(error_line(message), err=True)
    raise click.exceptions.Exit(code)


@contextmanager
def errors() -> Iterator[None]:
    """Library errors become `Error: ...` on stderr and exit code 1 (a bad setting: 2).

    A query mistake (`QuerySyntaxError`) keeps its lines: the query, a caret under the
    mistake, the fix. Every other message is one line. Ctrl-C exits 130.
    """
    # Imported here, not at the top: `mmsearch.query` loads the engine (numpy, SQLite, settings),
    # which `--help` and the TUI's first frame do without.
    from mmsearch.query.parse import QuerySyntaxError

    try:
        yield
    except QuerySyntaxError as exc:  # deliberate lines: the query, a caret, the fix
        click.echo(
            "Error: " + "\n".join(escape(line, backslash=False) for line in str(exc).split("\n")),
            err=True,
        )
        raise click.exceptions.Exit(1) from None
    except ConfigError as exc:
        fail(str(exc), 2)
    except MmsearchError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        click.echo("Interrupted; committed work is kept (run the same command to resume).", err=True)
        raise click.exceptions.Exit(130) from None


@contextmanager
def short_lived() -> Iterator[None]:
    """Run a one-shot command (a search) as a process that ends with it.

    A cold search imports ~400 modules. Python's cycle collector traversed their objects ~150
    times while it ran (~45 ms CPU) and again when the interpreter tore them down (~130 ms):
    a third of the process (ARCHITECTURE.md, "The CLI's cold path"). A search makes little
    cyclic garbage and its process ends with it, so in the console script the collector stays
    off and what is alive at the end is frozen, which teardown then skips.

    numpy also loads here with one BLAS thread: OpenBLAS starts a pool of threads, with their
    buffers, at load (~40 ms CPU), and a search's numpy work (one small query batch, the
    reranker's few words) already runs in one thread. The variable is removed once numpy is
    loaded, so nothing the command starts inherits it; a value the user set is kept.

    Called in-process (tests, scripts) it changes nothing: the collector is the caller's.
    """
    if not state["process"]:
        yield
        return
    gc.disable()
    if "numpy" not in sys.modules and "OPENBLAS_NUM_THREADS" not in os.environ:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        try:
            import numpy  # noqa: F401  (loaded now, with the variable set)
        finally:
            del os.environ["OPENBLAS_NUM_THREADS"]
    try:
        yield
    finally:
        gc.freeze()


def settings(index: Path | None, *, quick: bool = False, **overrides: Any) -> Any:
    """Settings from the config file and environment with the command's options on top, every
    value validated (a bad one raises `ConfigError` naming the option or variable).

    `quick`: read them without pydantic when every value is plainly valid (the same values and
    errors; ~80 ms less of a cold search, see `mmsearch.config_quick`). For commands that only
    read an index: the object has the settings' values and paths, not the model's methods."""
    if quick:
        from mmsearch.config_quick import load_settings
    else:
        from mmsearch.config import load_settings  # type: ignore[assignment]

    return load_settings(from_cli=True, index=index, **overrides)


@contextmanager
def existing_index(index: Path | None, *, readonly: bool = False) -> Iterator[Any]:
    """The configured index, which must exist; reading commands open it read-only (and read
    their settings quickly: `settings(quick=True)`)."""
    from mmsearch.library import Library

    chosen = settings(index, quick=readonly)
    with Library.open(chosen.index_path(), create=False, readonly=readonly, settings=chosen) as lib:
        yield lib


def use_plain(plain: bool) -> bool:
    """Tab-separated lines when asked, or when stdout is not a terminal (a pipe, a file)."""
    return plain or not sys.stdout.isatty()


_SURROGATE = re.compile("[\ud800-\udfff]")


def print_json(data: Any) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False)
    # File names that are not UTF-8 carry lone surrogates; JSON can spell them as escapes.
    click.echo(_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


# --------------------------------------------------------------------------------------------
# Options shared by several commands


def index_option(f: F) -> F:
    return click.option(
        "--index",
        type=PATH,
        default=None,
        help="Index folder (default: $MMSEARCH_INDEX, the config file, or <home>/default).",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "json_out", is_flag=True, help="Print JSON (stable, for programs).")(f)


def plain_option(f: F) -> F:
    return click.option("--plain", is_flag=True, help="Print tab-separated lines (the default when piped).")(f)


def command(name: str) -> Callable[[F], click.Command]:
    """`@click.command` with mmsearch's help layout (defaults shown, `-h` works)."""
    return click.command(
        name,
        context_settings={"show_default": True, "help_option_names": ["-h", "--help"]},
    )


# --------------------------------------------------------------------------------------------
# Value checks (click callbacks)


def _bad(value: object, problem: str) -> click.BadParameter:
    return click.BadParameter(f"{escape(str(value))} {problem}")


def check_k(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if not 1 <= value <= MAX_K:
        raise _bad(value, f"is out of range; use a whole number from 1 to {MAX_K}")
    return value


def check_min_score(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and -1.0 <= value <= 1.0):
        raise _bad(value, "is not a score; use a number from 0 to 1 (from -1 to 1 for raw cosines), e.g. 0.6")
    return value


def check_kinds(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    out = []
    for value in values:
        kind = value.strip().lower()
        if kind not in KINDS:
            raise _bad(repr(value), f"is not a kind; use {' or '.join(KINDS)}")
        out.append(kind)
    return out


_EXT = re.compile(r"[\w+-]+")


def check_exts(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    out = []
    for value in values:
        ext = value.strip().lstrip(".").lower()
        if not _EXT.fullmatch(ext):
            raise _bad(repr(value), "is not a file extension; use a word like jpg or md")
        out.append(ext)
    return out
