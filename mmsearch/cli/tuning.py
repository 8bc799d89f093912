"""`mmsearch tune`: learn from the captions the collection already has."""

from __future__ import annotations

from pathlib import Path

import click

from mmsearch.cli.common import (
    PATH,
    command,
    errors,
    existing_index,
    index_option,
    json_option,
    print_json,
)


@command("tune")
@click.option("--captions", type=PATH, default=None,
              help="A CSV of path,caption for indexed images, used with what is found.")
@index_option
@json_option
def tune(captions: Path | None, index: Path | None, json_out: bool) -> None:
    """Teach the reranker this collection from the captions it already has: alt text of images
    in Markdown notes, sidecar .txt/.xmp files, EXIF/XMP descriptions, and --captions FILE.
    The result is turned on only if it finds held-out captions' images better.

    \b
    Example:
        mmsearch tune
        mmsearch tune --captions ~/photos/captions.csv
    """
    with errors(), existing_index(index) as lib:
        report = lib.tune(captions, progress=None if json_out else click.echo)
    if json_out:
        from dataclasses import asdict

        print_json(asdict(report))
        return
    sources = ", ".join(f"{n} {kind}" for kind, n in sorted(report.sources.items())) or "none"
    click.echo(f"{report.captions} caption(s) of {report.images} image(s) ({sources}).")
    if report.before:
        tuned = " and ".join(
            name for name, on in (("the trained head", report.head), ("the adapter", report.adapter)) if on
        ) or "the best setting tried"
        click.echo(
            f"Held-out captions ({report.held_out_captions}): R@1 {report.before['R@1']:.3f} "
            f"without, {report.after['R@1']:.3f} with {tuned}."
        )
    click.echo(("Turned on: " if report.enabled else "Not turned on: ") + report.reason + ".")
