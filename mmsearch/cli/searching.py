"""`mmsearch search`: text, example images and sounds, filters; a table, tab-separated lines or JSON."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from mmsearch.cli.common import (
    KINDS,
    MAX_K,
    PATH,
    REAL,
    WHOLE,
    check_exts,
    check_k,
    check_kinds,
    check_min_score,
    command,
    errors,
    existing_index,
    index_option,
    json_option,
    plain_option,
    print_json,
    short_lived,
    use_plain,
)
from mmsearch.present import escape, time_range


@command("search")
@click.argument(
    "query", required=False, default=None,
    help="What to look for (starting with -? put -- before it).",
)
@click.option("--query", "-q", "query_opt", default=None, show_default=False,
              help="What to look for, instead of QUERY (may start with -).")
@click.option("--image", "-i", type=PATH, multiple=True, help="Example image: more like this.")
@click.option("--audio", "-a", type=PATH, multiple=True, help="Example sound: more like this sound (repeatable).")
@click.option("-k", "--top", "k", type=WHOLE, default=10, callback=check_k,
              help=f"At most this many results (1 to {MAX_K}).")
@click.option("--min-score", type=REAL, default=None, callback=check_min_score,
              help="Hide matches scored below this: 0 to 1 on the model's calibrated scale, -1 to 1 "
              "for raw cosines (default: the model's cut-off).")
@click.option("--kind", multiple=True, callback=check_kinds,
              help=f"Only this kind: {' or '.join(KINDS)} (repeatable).")
@click.option("--folder", type=PATH, multiple=True, help="Only under this folder (repeatable).")
@click.option("--ext", multiple=True, callback=check_exts,
              help="Only this file extension, e.g. jpg (repeatable).")
@click.option("--moments", is_flag=True,
              help="Plain output: add a fifth field listing the other matching moments of a "
              "recording or video, best first, separated by commas.")
@index_option
@json_option
@plain_option
def search(
    query: str | None,
    query_opt: str | None,
    image: tuple[Path, ...],
    audio: tuple[Path, ...],
    k: int,
    min_score: float | None,
    kind: list[str],
    folder: tuple[Path, ...],
    ext: list[str],
    moments: bool,
    index: Path | None,
    json_out: bool,
    plain: bool,
) -> None:
    """Search by text, by example image or sound, or any mix of them.

    Text may weight terms (0 < weight <= 100) and exclude others:
    2:"red car" street -night. A query that starts with - goes after --.

    Plain output (the default when piped) is one line per hit: score, kind,
    path, separated by tabs, and for a recording or video a fourth field
    saying where in it the match is (MM:SS-MM:SS, or HH:MM:SS-HH:MM:SS;
    --moments adds the other places that match). In the path,
    backslash, tab, newline, carriage return and other control characters
    are written as \\\\, \\t, \\n, \\r, \\xNN.

    \b
    Example:
        mmsearch search "a cat on a sofa"
        mmsearch search --image holiday.jpg -k 5
        mmsearch search "beach" --image sunset.jpg --kind image --json
        mmsearch search "dog barking" --kind audio
        mmsearch search "rain" --audio thunder.wav
        mmsearch search -- '-night street'
    """
    if query is not None and query_opt is not None:
        raise click.BadParameter(
            "give the query once: either as QUERY or with --query, not both", param_hint="'--query'"
        )
    text = query_opt if query_opt is not None else query
    with short_lived(), errors(), existing_index(index, readonly=True) as lib:
        hits = lib.search(
            text,
            image=[str(p) for p in image],
            audio=[str(p) for p in audio],
            k=k,
            min_score=min_score,
            kinds=kind,
            folders=[str(f) for f in folder],
            extensions=ext,
        )
    if not hits:
        # Nothing shown is a result too: say why on stderr (any output mode) and exit 1, as
        # grep does, so scripts can tell "no match" from a match.
        click.echo(nothing_found(hits), err=True)
        if json_out:
            print_json([])
        raise click.exceptions.Exit(1)
    if json_out:
        print_json([h.to_json() for h in hits])
    elif use_plain(plain):
        for h in hits:
            when = f"\t{time_range(h.start, h.end)}" if h.start is not None else ""
            if moments and h.moments:
                when += "\t" + ",".join(time_range(t0, t1) for t0, t1, _ in h.moments)
            click.echo(f"{h.score:.4f}\t{h.kind}\t{escape(h.path)}{when}")
    else:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table("#", "score", "kind", "path", "where", box=None)
        for i, h in enumerate(hits, 1):
            when = time_range(h.start, h.end) if h.start is not None else ""
            if h.moments:
                when += "\nalso " + ", ".join(time_range(t0, t1) for t0, t1, _ in h.moments)
            table.add_row(str(i), f"{h.score:.3f}", Text(escape(h.kind)), Text(escape(h.path)), when)
        Console().print(table)


def nothing_found(hits: Any) -> str:
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
