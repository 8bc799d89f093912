"""`mmsearch watch` (and `mmsearch index --watch`): index folders, then follow them until Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mmsearch.cli.common import PATH, command, errors, index_option, settings
from mmsearch.present import escape


@command("watch")
@click.argument("folders", nargs=-1, type=PATH,
                help="Folders to index and follow; none follows every indexed folder.")
@index_option
@click.option("--model", default=None, help="Model for a new index (`mmsearch models` lists them).")
@click.option("--json", "json_out", is_flag=True, help="Print one JSON object per update (JSON lines).")
def watch(folders: tuple[Path, ...], index: Path | None, model: str | None, json_out: bool) -> None:
    """Index folders, then follow them: files saved, copied, renamed, moved or deleted are
    indexed moments later, until Ctrl-C. Searches elsewhere see each update.

    Files still being written are indexed once they stop growing. Where file events may be
    lost (the OS watch limit, network shares, a laptop asleep), the folders are rescanned; see
    the `watch_*` settings in the README for polling and the periodic rescan.

    \b
    Example:
        mmsearch watch ~/Pictures ~/Notes
        mmsearch watch                # follow every indexed folder
        mmsearch index --watch ~/Pictures
    """
    follow(list(folders) or None, index=index, model=model, json_out=json_out)


def follow(folders: list[Path] | None, *, index: Path | None, model: str | None, json_out: bool) -> None:
    """What `watch` and `index --watch` run."""
    import signal
    import threading
    import time

    from mmsearch.library import Library

    stop = threading.Event()

    def on_batch(batch: Any) -> None:
        r = batch.report
        if json_out:
            click.echo(json.dumps({"reason": batch.reason, "roots": list(batch.roots),
                                   "changed": batch.changed, "seconds": round(batch.seconds, 3),
                                   "report": r.to_json()}, ensure_ascii=False))
            return
        click.echo(
            f"{time.strftime('%H:%M:%S')} {batch.reason}: {r.added} added, {r.updated} updated, "
            f"{r.moved} moved, {r.removed} removed, {r.failed} skipped ({batch.seconds:.1f} s)."
        )
        for note in r.notes:
            click.echo(escape(note, backslash=False))

    def on_notice(notice: Any) -> None:
        click.echo("Warning: " + escape(notice.message, backslash=False), err=True)

    shown = {"at": 0.0}

    def on_progress(p: Any) -> None:  # thousands of files landed at once: say how far it is
        if json_out or p.phase != "encode" or p.total < 100 or time.monotonic() - shown["at"] < 2:
            return
        shown["at"] = time.monotonic()
        click.echo(f"  encoding {p.done}/{p.total} ({escape(Path(p.path or '').name)})", err=True)

    def on_interrupt(signum: int, frame: Any) -> None:
        stop.set()  # finish the batch in hand and return; a second Ctrl-C interrupts at once
        signal.signal(signal.SIGINT, previous)

    with errors():
        chosen = settings(index, model=model)
        with Library.open(chosen.index_path(), model=model and chosen.model, settings=chosen) as lib:
            previous = signal.signal(signal.SIGINT, on_interrupt)
            try:
                if not json_out:
                    click.echo(f"Following the folders of {lib.path}; Ctrl-C stops.", err=True)
                lib.watch(folders, stop=stop, on_batch=on_batch, on_notice=on_notice, progress=on_progress)
            finally:
                signal.signal(signal.SIGINT, previous)
        if stop.is_set() and not json_out:
            click.echo("Stopped; everything seen so far is indexed.", err=True)
