"""`mmsearch remove`, `exclude` and `include`: what the index forgets and keeps out."""

from __future__ import annotations

from pathlib import Path

import click

from mmsearch.cli.common import PATH, command, errors, existing_index, index_option


@command("remove")
@click.argument("paths", nargs=-1, required=True, type=PATH, help="Files or folders to forget.")
@index_option
def remove(paths: tuple[Path, ...], index: Path | None) -> None:
    """Remove files or folders from the index (the files themselves are not touched).

    A folder indexed on its own is forgotten entirely. A file or folder inside an indexed folder
    is also excluded, so later runs do not bring it back (`mmsearch include PATH` undoes that).

    \b
    Example:
        mmsearch remove ~/Pictures/old
    """
    with errors(), existing_index(index) as lib:
        n = lib.remove(list(paths))
    click.echo(f"Removed {n} item(s).")


@command("exclude")
@click.argument(
    "patterns", nargs=-1, required=True,
    help="Paths, or gitignore-style patterns like '*.tmp' or 'cache/'.",
)
@index_option
def exclude(patterns: tuple[str, ...], index: Path | None) -> None:
    """Never index these paths or patterns; matching items already indexed are forgotten.

    Patterns follow .gitignore rules and are matched below every indexed folder. A
    `.mmsearchignore` file in a folder works like a `.gitignore` there. `mmsearch info` lists
    the exclusions; `mmsearch include` removes one.

    \b
    Example:
        mmsearch exclude '*.tmp' '**/thumbnails/' ~/Pictures/screenshots
    """
    with errors(), existing_index(index) as lib:
        n = lib.exclude(list(patterns))
    click.echo(f"Excluded; {n} item(s) forgotten.")


@command("include")
@click.argument("patterns", nargs=-1, required=True,
                help="Excluded paths or patterns to allow again.")
@index_option
def include(patterns: tuple[str, ...], index: Path | None) -> None:
    """Undo an exclusion (from `mmsearch exclude` or `mmsearch remove`); the next
    `mmsearch index` finds those files again.

    \b
    Example:
        mmsearch include '*.tmp'
    """
    with errors(), existing_index(index) as lib:
        lib.include(list(patterns))
    click.echo("Included again; run `mmsearch index` to index them.")
