"""The `mmsearch` command: a thin shell over `Library` that turns its errors into one clean line.

Each command lives in its own module, imported only when that command runs (click's lazy
group pattern): `mmsearch search` never builds `serve` or `doctor`, and `mmsearch --help` loads
no engine at all.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from mmsearch.cli.common import PROG, error_line, state
from mmsearch.errors import ConfigError, MmsearchError

logger = logging.getLogger(__name__)

COMMANDS: dict[str, str] = {
    "index": "mmsearch.cli.indexing:index",
    "watch": "mmsearch.cli.watching:watch",
    "search": "mmsearch.cli.searching:search",
    "info": "mmsearch.cli.info:info",
    "remove": "mmsearch.cli.editing:remove",
    "exclude": "mmsearch.cli.editing:exclude",
    "include": "mmsearch.cli.editing:include",
    "tune": "mmsearch.cli.tuning:tune",
    "models": "mmsearch.cli.doctor:models",
    "doctor": "mmsearch.cli.doctor:doctor",
    "tui": "mmsearch.cli.launch:tui",
    "serve": "mmsearch.cli.launch:serve",
}
"""Command name -> `module:attribute` of its click command, in the order `--help` lists them."""


class Group(click.Group):
    """The `mmsearch` group: commands load lazily; every failure ends as `Error: ...` on
    stderr, never a traceback.

    Usage errors (unknown option, bad value, missing argument) are one line and exit 2;
    `MmsearchError` one line and exit 1 (a bad setting, `ConfigError`, exits 2); anything
    unexpected one line naming it and exit 1 (`-v` logs the traceback). `click.testing.CliRunner`
    calls `main` too, so tests see exactly what a user sees.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            close = difflib.get_close_matches(name, list(COMMANDS), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            ctx.fail(f"No such command '{name}'.{hint}")
        return super().resolve_command(ctx, args)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        state["verbose"] = False
        try:
            result = super().main(
                args=args,
                prog_name=prog_name or PROG,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = result if isinstance(result, int) and not isinstance(result, bool) else 0
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except click.Abort:
            click.echo("Error: aborted.", err=True)
            code = 1
        except click.ClickException as exc:
            code = _show_click_error(exc)
        except MmsearchError as exc:  # raised outside a command's own handling
            click.echo(error_line(str(exc)), err=True)
            code = 2 if isinstance(exc, ConfigError) else 1
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            code = 130
        except Exception as exc:  # the last line of defence: one line, not a traceback
            if state["verbose"]:
                logger.error("Internal error", exc_info=exc)
            click.echo(
                error_line(
                    f"internal error ({type(exc).__name__}: {str(exc)[:300]}); "
                    "run with -v for the traceback and please report it."
                ),
                err=True,
            )
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


def _show_click_error(exc: click.ClickException) -> int:
    """Print a click error as one line (`mmsearch` alone prints the help); return the exit code."""
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.exceptions.NoArgsIsHelpError) and ctx is not None:
        click.echo(ctx.get_help())
        return 0
    message = " ".join(exc.format_message().split("\n")).strip()
    if isinstance(exc, click.NoSuchOption):
        # The same words whichever click is installed (8.2 changed them).
        close = sorted(exc.possibilities or ())
        message = f"No such option: {exc.option_name}" + (
            f". Did you mean {' or '.join(close)}?" if close else ""
        )
    if isinstance(exc, click.UsageError):
        where = ctx.command_path if ctx is not None else PROG
        hint = f" (see {where} --help)."
        if (
            isinstance(exc, click.NoSuchOption)
            and ctx is not None
            and ctx.command.name == "search"
            and not exc.option_name.startswith("--")
        ):
            hint = (
                " (a query that starts with - goes after --, e.g. "
                f"mmsearch search -- '-night street'; see {where} --help)."
            )
        message = message.rstrip(".") + hint
    click.echo(error_line(message), err=True)
    return exc.exit_code


@click.group(
    PROG,
    cls=Group,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--verbose", "-v", is_flag=True, help="Log what happens.")
def app(verbose: bool) -> None:
    """Local multimodal search: index images, sounds and text documents; search by text or example."""
    state["verbose"] = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """The console script: the same handling as the tests see, with the program named mmsearch."""
    state["process"] = True
    app.main(prog_name=PROG)
