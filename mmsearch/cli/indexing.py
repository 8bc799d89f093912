"""`mmsearch index`: bring folder trees into the index, with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mmsearch.cli.common import (
    PATH,
    WHOLE,
    command,
    errors,
    index_option,
    json_option,
    print_json,
    settings,
)
from mmsearch.present import escape


@command("index")
@click.argument(
    "folders", nargs=-1, type=PATH,
    help="Folders (or files) to index; none re-scans the indexed folders.",
)
@index_option
@click.option("--model", default=None, help="Model for a new index (`mmsearch models` lists them).")
@click.option("--batch-size", type=WHOLE, default=None, help="Files per model batch (1 to 4096; default 32).")
@click.option(
    "--verify", is_flag=True,
    help="Also re-read files whose size and time look unchanged, and re-encode those "
    "whose content changed (slower: every file is read).",
)
@click.option(
    "--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
    help="Decode and encode on a Ray cluster: its address (HOST:6379), or none for the one on "
    "this machine (a new one on 127.0.0.1 if none runs). The files must be at the same paths "
    "on every node.",
)
@json_option
@click.option("--watch", is_flag=True, help="Then keep following the folders (as `mmsearch watch`).")
def index(
    folders: tuple[Path, ...],
    index: Path | None,
    model: str | None,
    batch_size: int | None,
    verify: bool,
    ray_address: str | None,
    json_out: bool,
    watch: bool,
) -> None:
    """Index folder trees: new and changed files are encoded, deleted ones dropped.

    A folder that is missing or empty (an unmounted drive) is skipped and its items kept;
    `mmsearch remove FOLDER` forgets it for good. Use --verify after restoring files from a
    backup tool that keeps modification times, or on file systems with coarse times.

    \b
    Example:
        mmsearch index ~/Pictures ~/Notes
        mmsearch index            # bring every indexed folder up to date
        mmsearch index --verify   # also catch content changed behind unchanged size and time
        mmsearch index --watch    # then keep following the folders (Ctrl-C stops)
        mmsearch index ~/Pictures --ray 10.0.0.5:6379   # encode on a Ray cluster
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
        from mmsearch.cli.watching import follow

        follow(list(folders) or None, index=index, model=model, json_out=json_out)
        return
    if ray_address is not None and Path(ray_address).expanduser().exists():
        # `--ray DIR`: the option's value is optional, so it took the folder that followed it.
        folders, ray_address = (*folders, Path(ray_address).expanduser()), "local"
    with errors():
        chosen = settings(index, batch_size=batch_size, model=model)
        with Library.open(chosen.index_path(), model=model and chosen.model, settings=chosen) as lib:
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
                    bar.update(tasks[p.phase], completed=p.done, total=p.total or None, description=label)

                report = lib.index(list(folders) or None, progress=on_progress, verify=verify, ray=ray_address)
        if json_out:
            print_json(report.to_json())
            return
        click.echo(
            f"{report.scanned} files: {report.added} added, {report.updated} updated, "
            f"{report.moved} moved, {report.removed} removed, {report.unchanged} unchanged, "
            f"{report.failed} skipped ({report.seconds:.1f} s)."
        )
        if report.failed:
            click.echo("`mmsearch info --errors` lists the skipped files and why.")
        for note in report.notes:
            click.echo(escape(note, backslash=False))
