"""The `mmsearch` command: a thin shell over `Library` that turns its errors into one clean line."""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from mmsearch.errors import ConfigError, MmsearchError
from mmsearch.media import kinds as _media_kinds
from mmsearch.media.kinds import IMAGE, TEXT

try:  # typer >= 0.2x bundles its own copy of click
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - older typer runs on click itself
    from click import exceptions as _click_errors  # type: ignore[no-redef]

logger = logging.getLogger(__name__)

PROG = "mmsearch"
MAX_K = 10_000
KINDS: tuple[str, ...] = (IMAGE, TEXT) + (
    (_media_kinds.AUDIO,) if getattr(_media_kinds, "AUDIO", None) else ()
)
"""The kinds `--kind` accepts: what `mmsearch.media.kinds` defines."""

_state = {"verbose": False}


def clock(seconds: float, *, hours: bool = False) -> str:
    """Seconds as `MM:SS`, or `HH:MM:SS` with `hours`."""
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, sec = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{sec:02d}" if hours else f"{h * 60 + m:02d}:{sec:02d}"


def time_range(start: float | None, end: float | None) -> str:
    """Where in a recording a hit is, e.g. `01:02:15-01:02:25` (hours shown past the first)."""
    if start is None:
        return ""
    end = start if end is None else end
    hours = end >= 3600
    return f"{clock(start, hours=hours)}-{clock(end, hours=hours)}"


def escape(text: str, *, backslash: bool = True) -> str:
    r"""`text` on one line: backslash, tab, newline, carriage return and other control characters
    become `\\`, `\t`, `\n`, `\r`, `\xNN` (undecodable file-name bytes too), so each line of
    plain output is one record whatever a file name holds. `backslash=False` leaves backslashes
    alone (for messages meant for people, where the round trip does not matter)."""
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\" if backslash else ch)
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def _error_line(message: str) -> str:
    return "Error: " + escape(message, backslash=False)


class _Group(typer.core.TyperGroup):
    """The `mmsearch` group: every failure ends as `Error: ...` on stderr, never a traceback.

    Usage errors (unknown option, bad value, missing argument) are one line and exit 2;
    `MmsearchError` one line and exit 1 (a bad setting, `ConfigError`, exits 2); anything
    unexpected one line naming it and exit 1 (`-v` logs the traceback). `typer.testing.CliRunner`
    calls `main` too, so tests see exactly what a user sees.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        _state["verbose"] = False
        try:
            result = super().main(
                args=args,
                prog_name=prog_name or PROG,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = result if isinstance(result, int) and not isinstance(result, bool) else 0
        except typer.Exit as exc:
            code = exc.exit_code
        except typer.Abort:
            typer.echo("Error: aborted.", err=True)
            code = 1
        except _click_errors.ClickException as exc:
            code = _show_click_error(exc)
        except MmsearchError as exc:  # raised outside a command's own handling
            typer.echo(_error_line(str(exc)), err=True)
            code = 2 if isinstance(exc, ConfigError) else 1
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            code = 130
        except Exception as exc:  # the last line of defence: one line, not a traceback
            if _state["verbose"]:
                logger.error("Internal error", exc_info=exc)
            typer.echo(
                _error_line(
                    f"internal error ({type(exc).__name__}: {str(exc)[:300]}); "
                    "run with -v for the traceback and please report it."
                ),
                err=True,
            )
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


_ALLOWED = {"k": f"a whole number from 1 to {MAX_K}", "min_score": "a score from 0 to 1 (from -1 to 1 for raw cosines)"}
"""What an option takes, for the message when a value is not even of the right type (options
that are settings, like --batch-size, are described by `mmsearch.config.allowed_values`)."""


def _explain_bad_type(exc: Exception) -> None:
    """Name the value and what is allowed when typer could not convert it (`-k abc`)."""
    cause = exc.__cause__
    if not isinstance(exc, _click_errors.BadParameter) or not hasattr(cause, "errors"):
        return
    try:
        error = cause.errors()[0]
    except (AttributeError, IndexError, TypeError):  # not a pydantic error after all
        return
    reason = str(error.get("msg", "")).split(", unable to")[0]
    name = getattr(exc.param, "name", None)
    allowed = _ALLOWED.get(name or "")
    if allowed is None and name:
        from mmsearch.config import Settings, allowed_values

        allowed = allowed_values(name) if name in Settings.model_fields else None
    exc.message = f"{escape(repr(error.get('input')))} is not valid ({reason})" + (
        f"; use {allowed}" if allowed else ""
    )


def _show_click_error(exc: Exception) -> int:
    """Print a click error as one line (`mmsearch` alone prints the help); return the exit code."""
    no_args = getattr(_click_errors, "NoArgsIsHelpError", None)
    ctx = getattr(exc, "ctx", None)
    if no_args is not None and isinstance(exc, no_args) and ctx is not None:
        typer.echo(ctx.get_help())
        return 0
    _explain_bad_type(exc)
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = " ".join(message.split("\n")).strip()
    if isinstance(exc, _click_errors.UsageError):
        where = ctx.command_path if ctx is not None else PROG
        hint = f" (see {where} --help)."
        if (
            isinstance(exc, _click_errors.NoSuchOption)
            and ctx is not None
            and ctx.command.name == "search"
            and not exc.option_name.startswith("--")
        ):
            hint = (
                " (a query that starts with - goes after --, e.g. "
                f"mmsearch search -- '-night street'; see {where} --help)."
            )
        message = message.rstrip(".") + hint
    typer.echo(_error_line(message), err=True)
    return int(getattr(exc, "exit_code", 1))


app = typer.Typer(
    name=PROG,
    cls=_Group,
    help="Local multimodal search: index images, sounds and text documents; search by text or example.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

IndexOpt = Annotated[
    Path | None,
    typer.Option(
        "--index",
        help="Index folder (default: $MMSEARCH_INDEX, the config file, or <home>/default).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable, for programs).")]
PlainOpt = Annotated[
    bool,
    typer.Option("--plain", help="Print tab-separated lines (the default when piped)."),
]


def _fail(message: str, code: int = 1) -> None:
    typer.echo(_error_line(message), err=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
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
        typer.echo(
            "Error: " + "\n".join(escape(line, backslash=False) for line in str(exc).split("\n")),
            err=True,
        )
        raise typer.Exit(1) from None
    except ConfigError as exc:
        _fail(str(exc), 2)
    except MmsearchError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        typer.echo(
            "Interrupted; committed work is kept (run the same command to resume).", err=True
        )
        raise typer.Exit(130) from None


def _settings(index: Path | None, **overrides: Any) -> Any:
    """Settings from the config file and environment with the command's options on top, every
    value validated (a bad one raises `ConfigError` naming the option or variable)."""
    from mmsearch.config import load_settings

    return load_settings(from_cli=True, index=index, **overrides)


@contextmanager
def _existing_index(index: Path | None, *, readonly: bool = False) -> Iterator[Any]:
    """The configured index, which must exist; reading commands open it read-only."""
    from mmsearch.library import Library

    settings = _settings(index)
    with Library.open(
        settings.index_path(), create=False, readonly=readonly, settings=settings
    ) as lib:
        yield lib


def _plain(plain: bool) -> bool:
    return plain or not sys.stdout.isatty()


_SURROGATE = re.compile("[\ud800-\udfff]")


def _print_json(data: Any) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False)
    # File names that are not UTF-8 carry lone surrogates; JSON can spell them as escapes.
    typer.echo(_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def _bad(value: object, problem: str) -> typer.BadParameter:
    return typer.BadParameter(f"{escape(str(value))} {problem}")


def _check_k(value: int) -> int:
    if not 1 <= value <= MAX_K:
        raise _bad(value, f"is out of range; use a whole number from 1 to {MAX_K}")
    return value


def _check_min_score(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and -1.0 <= value <= 1.0):
        raise _bad(value, "is not a score; use a number from 0 to 1 (from -1 to 1 for raw cosines), e.g. 0.6")
    return value


def _check_kinds(values: list[str] | None) -> list[str] | None:
    if not values:
        return values
    out = []
    for value in values:
        kind = value.strip().lower()
        if kind not in KINDS:
            raise _bad(repr(value), f"is not a kind; use {' or '.join(KINDS)}")
        out.append(kind)
    return out


_EXT = re.compile(r"[\w+-]+")


def _check_exts(values: list[str] | None) -> list[str] | None:
    if not values:
        return values
    out = []
    for value in values:
        ext = value.strip().lstrip(".").lower()
        if not _EXT.fullmatch(ext):
            raise _bad(repr(value), "is not a file extension; use a word like jpg or md")
        out.append(ext)
    return out


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    _state["verbose"] = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command()
def index(
    folders: Annotated[
        list[Path] | None,
        typer.Argument(help="Folders (or files) to index; none re-scans the indexed folders."),
    ] = None,
    index: IndexOpt = None,
    model: Annotated[
        str | None,
        typer.Option(help="Model for a new index (`mmsearch models` lists them)."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Files per model batch (1 to 4096; default 32).")
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Also re-read files whose size and time look unchanged, and re-encode those "
            "whose content changed (slower: every file is read).",
        ),
    ] = False,
    json_out: JsonOpt = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Then keep following the folders (as `mmsearch watch`).")
    ] = False,
) -> None:
    """Index folder trees: new and changed files are encoded, deleted ones dropped.

    A folder that is missing or empty (an unmounted drive) is skipped and its items kept;
    `mmsearch remove FOLDER` forgets it for good. Use --verify after restoring files from a
    backup tool that keeps modification times, or on file systems with coarse times.

    Example:
        mmsearch index ~/Pictures ~/Notes
        mmsearch index            # bring every indexed folder up to date
        mmsearch index --verify   # also catch content changed behind unchanged size and time
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from mmsearch.library import Library

    if watch:
        watch_folders(folders, index=index, model=model, json_out=json_out)
        return
    with _errors():
        settings = _settings(index, batch_size=batch_size, model=model)
        with Library.open(
            settings.index_path(), model=model and settings.model, settings=settings
        ) as lib:
            columns = (
                TextColumn("{task.description:<8}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            with Progress(*columns, transient=True, disable=json_out) as bar:
                tasks: dict[str, Any] = {}

                def on_progress(p: Any) -> None:
                    if p.phase not in tasks:
                        tasks[p.phase] = bar.add_task(p.phase, total=p.total or None)
                    # Inside a large document the file count stands still: show its chunks.
                    inside = p.part_total and p.part_done < p.part_total
                    label = f"{p.phase} {p.part_done}/{p.part_total} chunks" if inside else p.phase
                    bar.update(
                        tasks[p.phase], completed=p.done, total=p.total or None, description=label
                    )

                report = lib.index(folders, progress=on_progress, verify=verify)
        if json_out:
            _print_json(report.to_json())
            return
        typer.echo(
            f"{report.scanned} files: {report.added} added, {report.updated} updated, "
            f"{report.moved} moved, {report.removed} removed, {report.unchanged} unchanged, "
            f"{report.failed} skipped ({report.seconds:.1f} s)."
        )
        if report.failed:
            typer.echo("`mmsearch info --errors` lists the skipped files and why.")
        for note in report.notes:
            typer.echo(escape(note, backslash=False))


@app.command()
def search(
    query: Annotated[
        str | None,
        typer.Argument(
            help="What to look for (starting with -? put -- before it).", show_default=False
        ),
    ] = None,
    query_opt: Annotated[
        str | None,
        typer.Option(
            "--query",
            "-q",
            help="What to look for, instead of QUERY (may start with -).",
            show_default=False,
        ),
    ] = None,
    image: Annotated[
        list[Path] | None, typer.Option("--image", "-i", help="Example image: more like this.")
    ] = None,
    audio: Annotated[
        list[Path] | None,
        typer.Option("--audio", "-a", help="Example sound: more like this sound (repeatable)."),
    ] = None,
    k: Annotated[
        int,
        typer.Option(
            "-k", "--top", help=f"At most this many results (1 to {MAX_K}).", callback=_check_k
        ),
    ] = 10,
    min_score: Annotated[
        float | None,
        typer.Option(
            help="Hide matches scored below this: 0 to 1 on the model's calibrated scale, -1 to 1 "
            "for raw cosines (default: the model's cut-off).",
            callback=_check_min_score,
        ),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Only this kind: {' or '.join(KINDS)} (repeatable).", callback=_check_kinds
        ),
    ] = None,
    folder: Annotated[
        list[Path] | None, typer.Option(help="Only under this folder (repeatable).")
    ] = None,
    ext: Annotated[
        list[str] | None,
        typer.Option(help="Only this file extension, e.g. jpg (repeatable).", callback=_check_exts),
    ] = None,
    index: IndexOpt = None,
    json_out: JsonOpt = False,
    plain: PlainOpt = False,
) -> None:
    """Search by text, by example image or sound, or any mix of them.

    Text may weight terms (0 < weight <= 100) and exclude others:
    2:"red car" street -night. A query that starts with - goes after --.

    Plain output (the default when piped) is one line per hit: score, kind,
    path, separated by tabs, and for a recording a fourth field saying where
    in it the match is (MM:SS-MM:SS, or HH:MM:SS-HH:MM:SS). In the path,
    backslash, tab, newline, carriage return and other control characters
    are written as \\\\, \\t, \\n, \\r, \\xNN.

    Example:
        mmsearch search "a cat on a sofa"
        mmsearch search --image holiday.jpg -k 5
        mmsearch search "beach" --image sunset.jpg --kind image --json
        mmsearch search "dog barking" --kind audio
        mmsearch search "rain" --audio thunder.wav
        mmsearch search -- '-night street'
    """
    if query is not None and query_opt is not None:
        raise typer.BadParameter(
            "give the query once: either as QUERY or with --query, not both", param_hint="'--query'"
        )
    text = query_opt if query_opt is not None else query
    with _errors(), _existing_index(index, readonly=True) as lib:
        hits = lib.search(
            text,
            image=[str(p) for p in image or []],
            audio=[str(p) for p in audio or []],
            k=k,
            min_score=min_score,
            kinds=kind or (),
            folders=[str(f) for f in folder or []],
            extensions=ext or (),
        )
    if not hits:
        # Nothing shown is a result too: say why on stderr (any output mode) and exit 1, as
        # grep does, so scripts can tell "no match" from a match.
        typer.echo(_nothing_found(hits), err=True)
        if json_out:
            _print_json([])
        raise typer.Exit(1)
    if json_out:
        _print_json([h.to_json() for h in hits])
    elif _plain(plain):
        for h in hits:
            when = f"\t{time_range(h.start, h.end)}" if h.start is not None else ""
            typer.echo(f"{h.score:.4f}\t{h.kind}\t{escape(h.path)}{when}")
    else:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table("#", "score", "kind", "path", "where", box=None)
        for i, h in enumerate(hits, 1):
            when = time_range(h.start, h.end) if h.start is not None else ""
            table.add_row(
                str(i), f"{h.score:.3f}", Text(escape(h.kind)), Text(escape(h.path)), when
            )
        Console().print(table)


def _nothing_found(hits: Any) -> str:
    """Why a search shows nothing, and how to see what the cut-off hid."""
    if not hits.below_cutoff:
        return "No matches: nothing in the index (within the filters) resembles the query."
    cutoff = f" {hits.cutoff:.2f}" if hits.cutoff is not None else ""
    lower = math.floor((hits.best_below - 0.005) * 100) / 100
    return (
        f"No results above the cut-off{cutoff}: {hits.below_cutoff} weaker "
        f"match{'es lie' if hits.below_cutoff != 1 else ' lies'} below it (best score "
        f"{hits.best_below:.3f}). See them with --min-score {lower:.2f} (or min:{lower:.2f} in "
        "the query)."
    )


@app.command()
def info(
    path: Annotated[
        Path | None,
        typer.Argument(help="A file: show what the index knows of it (tags, transcript, ...)."),
    ] = None,
    index: IndexOpt = None,
    errors: Annotated[
        bool, typer.Option("--errors", help="List the files that were skipped.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show what is indexed: model, counts, folders, sizes (and skipped files with --errors);
    with a PATH, what the index knows of that file.

    Example:
        mmsearch info
        mmsearch info --errors --json
        mmsearch info ~/Recordings/memo-0412.m4a
    """
    if path is not None:
        with _errors(), _existing_index(index, readonly=True) as lib:
            item = lib.item(path)
        if json_out:
            _print_json(item.to_json())
        else:
            typer.echo("\n".join(_item_lines(item)))
        return
    with _errors(), _existing_index(index, readonly=True) as lib:
        stats = lib.stats()
        skipped = lib.errors() if errors else []
    if json_out:
        data = stats.to_json()
        if errors:
            data["errors"] = [{"path": s.path, "reason": s.reason} for s in skipped]
        _print_json(data)
        return
    if errors:
        for s in skipped:
            typer.echo(f"{escape(s.path)}\t{escape(s.reason)}")
        return
    mb = 1024 * 1024
    lines = [
        f"index:    {escape(str(stats.path))}",
        f"model:    {stats.model}",
        "items:    "
        + (", ".join(f"{n} {kind}" for kind, n in sorted(stats.items.items())) or "none"),
        f"skipped:  {stats.failed}" + ("  (mmsearch info --errors)" if stats.failed else ""),
        "folders:  " + ("\n          ".join(_root_line(r, stats) for r in stats.roots) or "none"),
    ]
    if stats.exclusions:
        lines.append("excluded: " + "\n          ".join(escape(e) for e in stats.exclusions))
    for name, space in sorted(stats.spaces.items()):
        lines.append(f"space:    {name}: {space['count']} x {space['dim']} ({space['factory']})")
    lines.append(
        f"on disk:  catalog {stats.catalog_bytes / mb:.1f} MB, vectors {stats.index_bytes / mb:.1f} MB"
        f" (media {stats.media_bytes / mb:.1f} MB)"
    )
    typer.echo("\n".join(lines))


def _item_lines(item: Any) -> list[str]:
    lines = [f"path:     {escape(item.path)}", f"kind:     {item.kind}", f"size:     {item.size} bytes"]
    if item.status != "ok":
        lines.append(f"skipped:  {escape(item.error or '')}")
    if item.width:
        lines.append(f"pixels:   {item.width} x {item.height}")
    if item.taken_at:
        lines.append(f"taken:    {item.taken_at}")
    if item.duration is not None:
        lines.append(
            f"audio:    {clock(item.duration, hours=item.duration >= 3600)}, {item.sample_rate} Hz, "
            f"{item.channels} channel(s), {item.codec}"
        )
    if item.tags:
        lines.append("sounds:   " + ", ".join(f"{escape(label)} {score:.2f}" for label, score in item.tags))
    for start, end, text in item.transcript:
        lines.append(f"said:     {time_range(start, end)}  {escape(text, backslash=False)}")
    for text in item.read_text:
        lines.append(f"reads:    {escape(text, backslash=False)}")
    return lines


def _root_line(root: str, stats: Any) -> str:
    offline = root in stats.offline_roots
    return escape(root) + ("  (offline: missing or empty at the last run)" if offline else "")


@app.command()
def remove(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to forget.")],
    index: IndexOpt = None,
) -> None:
    """Remove files or folders from the index (the files themselves are not touched).

    A folder indexed on its own is forgotten entirely. A file or folder inside an indexed folder
    is also excluded, so later runs do not bring it back (`mmsearch include PATH` undoes that).

    Example:
        mmsearch remove ~/Pictures/old
    """
    with _errors(), _existing_index(index) as lib:
        n = lib.remove(paths)
    typer.echo(f"Removed {n} item(s).")


@app.command()
def exclude(
    patterns: Annotated[
        list[str], typer.Argument(help="Paths, or gitignore-style patterns like '*.tmp' or 'cache/'.")
    ],
    index: IndexOpt = None,
) -> None:
    """Never index these paths or patterns; matching items already indexed are forgotten.

    Patterns follow .gitignore rules and are matched below every indexed folder. A
    `.mmsearchignore` file in a folder works like a `.gitignore` there. `mmsearch info` lists
    the exclusions; `mmsearch include` removes one.

    Example:
        mmsearch exclude '*.tmp' '**/thumbnails/' ~/Pictures/screenshots
    """
    with _errors(), _existing_index(index) as lib:
        n = lib.exclude(patterns)
    typer.echo(f"Excluded; {n} item(s) forgotten.")


@app.command()
def include(
    patterns: Annotated[list[str], typer.Argument(help="Excluded paths or patterns to allow again.")],
    index: IndexOpt = None,
) -> None:
    """Undo an exclusion (from `mmsearch exclude` or `mmsearch remove`); the next
    `mmsearch index` finds those files again.

    Example:
        mmsearch include '*.tmp'
    """
    with _errors(), _existing_index(index) as lib:
        lib.include(patterns)
    typer.echo("Included again; run `mmsearch index` to index them.")


@app.command()
def tune(
    captions: Annotated[
        Path | None,
        typer.Option(help="A CSV of path,caption for indexed images, used with what is found."),
    ] = None,
    index: IndexOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Teach the reranker this collection from the captions it already has: alt text of images
    in Markdown notes, sidecar .txt/.xmp files, EXIF/XMP descriptions, and --captions FILE.
    The result is turned on only if it finds held-out captions' images better.

    Example:
        mmsearch tune
        mmsearch tune --captions ~/photos/captions.csv
    """
    with _errors(), _existing_index(index) as lib:
        report = lib.tune(captions, progress=None if json_out else typer.echo)
    if json_out:
        from dataclasses import asdict

        _print_json(asdict(report))
        return
    sources = ", ".join(f"{n} {kind}" for kind, n in sorted(report.sources.items())) or "none"
    typer.echo(f"{report.captions} caption(s) of {report.images} image(s) ({sources}).")
    if report.before:
        tuned = " and ".join(
            name for name, on in (("the trained head", report.head), ("the adapter", report.adapter)) if on
        ) or "the best setting tried"
        typer.echo(
            f"Held-out captions ({report.held_out_captions}): R@1 {report.before['R@1']:.3f} "
            f"without, {report.after['R@1']:.3f} with {tuned}."
        )
    typer.echo(("Turned on: " if report.enabled else "Not turned on: ") + report.reason + ".")


@app.command()
def models(json_out: JsonOpt = False) -> None:
    """List the model presets (and the OpenCLIP name patterns).

    Example:
        mmsearch models
    """
    from mmsearch.encoders.registry import list_models

    presets = list_models()
    if json_out:
        _print_json(
            [{"name": p.name, "family": p.family, "description": p.description} for p in presets]
        )
        return
    for p in presets:
        typer.echo(f"{p.name}\n    {p.description}")
    typer.echo(
        "open_clip:ARCH/PRETRAINED_TAG\n    Any OpenCLIP model and tag (Hugging Face cache).\n"
        "open_clip:ARCH@/path/to/checkpoint\n    Any OpenCLIP architecture with local weights."
    )


@app.command()
def doctor(
    prepare: Annotated[
        bool, typer.Option("--prepare", help="Load the model now, converting and caching it.")
    ] = False,
    model: Annotated[
        str | None, typer.Option(help="Model to check (default: the configured one).")
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", help="Rebuild the index's vector files and full-text index from its catalog."
        ),
    ] = False,
    index: IndexOpt = None,
) -> None:
    """Check the installation and the index: libraries, device, where indexes and caches live,
    then the index in full (catalog integrity, vector-file checksums, counts). Exits 1 when the
    index has problems; --repair rebuilds what can be rebuilt from the catalog.

    Example:
        mmsearch doctor --prepare
        mmsearch doctor --repair --index ~/photos-index
    """
    import importlib.metadata as md
    import platform

    from mmsearch.encoders.device import choose_device
    from mmsearch.encoders.registry import load_encoder, resolve_model

    with _errors():
        settings = _settings(index, model=model)
        spec = resolve_model(settings.model)
        typer.echo(f"python      {platform.python_version()}")
        for package in (
            "mmsearch",
            "faiss-cpu",
            "faiss-gpu",
            "torch",
            "onnxruntime",
            "open-clip-torch",
        ):
            try:
                typer.echo(f"{package:<11} {md.version(package)}")
            except md.PackageNotFoundError:
                pass
        import faiss

        device = choose_device(settings.device)
        typer.echo(f"device      {device.torch_device}{' (fp16)' if device.half else ''}")
        typer.echo(f"faiss GPUs  {faiss.get_num_gpus()}")
        typer.echo(f"index       {settings.index_path()}")
        typer.echo(f"model cache {settings.model_cache()}")
        typer.echo(f"model       {spec.name}")
        if prepare:
            encoder = load_encoder(spec, device=settings.device, cache_dir=settings.model_cache())
            encoder.embed_texts(["ready"])
            spaces = ", ".join(f"{s} {d}-d" for s, d in encoder.spaces.items())
            typer.echo(f"model ready ({spaces})")
        _doctor_index(settings, repair)


def _doctor_index(settings: Any, repair: bool) -> None:
    """The index part of `doctor`: check everything, repair on request, exit 1 on problems."""
    from mmsearch.library import Library

    folder = settings.index_path()
    if not (folder / "catalog.db").exists():
        typer.echo(f"index check no index at {escape(str(folder))} yet")
        return
    with Library.open(folder, create=False, readonly=not repair, settings=settings) as lib:
        problems = lib.check()
        if repair and problems:
            for action in lib.repair():
                typer.echo(f"repaired    {action}")
            problems = lib.check()
    if not problems:
        typer.echo("index check ok (catalog integrity, vector checksums and counts)")
        return
    for problem in problems:
        typer.echo(f"problem     {escape(problem)}")
    _fail(
        f"The index at {folder} has {len(problems)} problem(s); `mmsearch doctor --repair` "
        "rebuilds its vector files from the catalog."
    )


@app.command("watch")
def watch_folders(
    folders: Annotated[
        list[Path] | None,
        typer.Argument(help="Folders to index and follow; none follows every indexed folder."),
    ] = None,
    index: IndexOpt = None,
    model: Annotated[
        str | None, typer.Option(help="Model for a new index (`mmsearch models` lists them).")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per update (JSON lines).")
    ] = False,
) -> None:
    """Index folders, then follow them: files saved, copied, renamed, moved or deleted are
    indexed moments later, until Ctrl-C. Searches elsewhere see each update.

    Files still being written are indexed once they stop growing. Where file events may be
    lost (the OS watch limit, network shares, a laptop asleep), the folders are rescanned; see
    the `watch_*` settings in the README for polling and the periodic rescan.

    Example:
        mmsearch watch ~/Pictures ~/Notes
        mmsearch watch                # follow every indexed folder
        mmsearch index --watch ~/Pictures
    """
    import signal
    import threading
    import time

    from mmsearch.library import Library

    stop = threading.Event()

    def on_batch(batch: Any) -> None:
        r = batch.report
        if json_out:
            typer.echo(json.dumps({"reason": batch.reason, "roots": list(batch.roots),
                                   "changed": batch.changed, "seconds": round(batch.seconds, 3),
                                   "report": r.to_json()}, ensure_ascii=False))
            return
        typer.echo(
            f"{time.strftime('%H:%M:%S')} {batch.reason}: {r.added} added, {r.updated} updated, "
            f"{r.moved} moved, {r.removed} removed, {r.failed} skipped ({batch.seconds:.1f} s)."
        )
        for note in r.notes:
            typer.echo(escape(note, backslash=False))

    def on_notice(notice: Any) -> None:
        typer.echo("Warning: " + escape(notice.message, backslash=False), err=True)

    shown = {"at": 0.0}

    def on_progress(p: Any) -> None:  # thousands of files landed at once: say how far it is
        if json_out or p.phase != "encode" or p.total < 100 or time.monotonic() - shown["at"] < 2:
            return
        shown["at"] = time.monotonic()
        typer.echo(f"  encoding {p.done}/{p.total} ({escape(Path(p.path or '').name)})", err=True)

    def on_interrupt(signum: int, frame: Any) -> None:
        stop.set()  # finish the batch in hand and return; a second Ctrl-C interrupts at once
        signal.signal(signal.SIGINT, previous)

    with _errors():
        settings = _settings(index, model=model)
        with Library.open(settings.index_path(), model=model and settings.model, settings=settings) as lib:
            previous = signal.signal(signal.SIGINT, on_interrupt)
            try:
                if not json_out:
                    typer.echo(f"Following the folders of {lib.path}; Ctrl-C stops.", err=True)
                lib.watch(folders, stop=stop, on_batch=on_batch, on_notice=on_notice, progress=on_progress)
            finally:
                signal.signal(signal.SIGINT, previous)
        if stop.is_set() and not json_out:
            typer.echo("Stopped; everything seen so far is indexed.", err=True)


@app.command()
def tui(index: IndexOpt = None) -> None:
    """Search interactively in the terminal: as you type, by example, with previews.

    Press ? (or F1) inside for every key. Needs the `tui` extra:
    pip install 'mmsearch[tui]'.

    Example:
        mmsearch tui
        mmsearch tui --index ~/indexes/photos
    """
    try:
        from mmsearch.tui import make_app

        # Settings are read in the app's start-up worker (a bad one gets a screen there).
        tui_app = make_app(index)
    except ModuleNotFoundError as exc:  # textual or textual-image not installed
        _fail(
            f"The terminal UI needs the `tui` extra ({exc.name} is missing): "
            "pip install 'mmsearch[tui]'."
        )
    tui_app.run()


@app.command()
def serve(
    index: IndexOpt = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (another than 127.0.0.1 exposes the index).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="MMSEARCH_TOKEN", show_default=False,
            help="Require `Authorization: Bearer TOKEN` on every request ($MMSEARCH_TOKEN).",
        ),
    ] = None,
    folder: Annotated[
        list[Path] | None,
        typer.Option(help="A folder indexing jobs may index, besides the indexed ones (repeatable)."),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(help="A web origin allowed to call from a browser (repeatable; none by default)."),
    ] = None,
    max_k: Annotated[int, typer.Option(min=1, max=MAX_K, help="The most hits one request returns.")] = 1000,
    max_upload_mb: Annotated[
        int, typer.Option(min=1, max=4096, help="The largest request body (uploads), in MiB.")
    ] = 32,
    request_seconds: Annotated[
        float, typer.Option(min=1, max=3600, help="Abandon a request not answered by then.")
    ] = 60.0,
    watch: Annotated[
        bool, typer.Option("--watch", help="Also follow the indexed folders (as `mmsearch watch`).")
    ] = False,
) -> None:
    """Serve the index over HTTP (FastAPI): search, items, thumbnails, indexing jobs, and
    clip-retrieval's /knn-service API. Interactive docs at /docs, the schema at /openapi.json.

    Example:
        mmsearch serve
        mmsearch serve --index ~/photos-index --port 9000 --token s3cret
        mmsearch serve --watch     # new and changed files are found moments later
        curl 'http://127.0.0.1:8765/search?q=a+red+car&k=5'
    """
    with _errors():
        try:
            import uvicorn

            from mmsearch.server import ServiceConfig, make_app
        except ImportError as exc:
            _fail(f"The HTTP service needs its extra packages ({exc.name} is missing): "
                  "pip install 'mmsearch[server]'.")
        settings = _settings(index)
        config = ServiceConfig(
            token=token or None,
            folders=tuple(str(f) for f in folder or []),
            cors_origins=tuple(cors_origin or []),
            max_k=max_k,
            max_upload_bytes=max_upload_mb * 1024 * 1024,
            request_seconds=request_seconds,
            watch=watch,
        )
        api = make_app(settings.index_path(), settings=settings, config=config)
        if host not in ("127.0.0.1", "localhost", "::1") and not token:
            typer.echo(
                f"Warning: listening on {host} without --token: anyone who reaches this port "
                "can search the index and read its files.", err=True,
            )
        typer.echo(f"Serving {api.state.service.index} on http://{host}:{port} (docs: /docs)", err=True)
        uvicorn.run(api, host=host, port=port, log_level="info" if _state["verbose"] else "warning")


def main() -> None:
    """The console script: the same handling as the tests see, with the program named mmsearch."""
    typer.main.get_command(app).main(prog_name=PROG)
