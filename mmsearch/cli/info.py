"""`mmsearch info`: what the index holds, what it skipped, and what it knows of one file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from mmsearch.present import clock, escape, time_range


@command("info")
@click.argument(
    "path", type=PATH, required=False, default=None,
    help="A file: show what the index knows of it (tags, transcript, ...).",
)
@index_option
@click.option("--errors", "show_errors", is_flag=True, help="List the files that were skipped.")
@json_option
def info(path: Path | None, index: Path | None, show_errors: bool, json_out: bool) -> None:
    """Show what is indexed: model, counts, folders, sizes (and skipped files with --errors);
    with a PATH, what the index knows of that file.

    \b
    Example:
        mmsearch info
        mmsearch info --errors --json
        mmsearch info ~/Recordings/memo-0412.m4a
    """
    if path is not None:
        with errors(), existing_index(index, readonly=True) as lib:
            item = lib.item(path)
        if json_out:
            print_json(item.to_json())
        else:
            click.echo("\n".join(item_lines(item)))
        return
    with errors(), existing_index(index, readonly=True) as lib:
        stats = lib.stats()
        skipped = lib.errors() if show_errors else []
    if json_out:
        data = stats.to_json()
        if show_errors:
            data["errors"] = [{"path": s.path, "reason": s.reason} for s in skipped]
        print_json(data)
        return
    if show_errors:
        for s in skipped:
            click.echo(f"{escape(s.path)}\t{escape(s.reason)}")
        return
    click.echo("\n".join(stats_lines(stats)))


def stats_lines(stats: Any) -> list[str]:
    mb = 1024 * 1024
    lines = [
        f"index:    {escape(str(stats.path))}",
        f"model:    {stats.model}",
        "items:    " + (", ".join(f"{n} {kind}" for kind, n in sorted(stats.items.items())) or "none"),
        f"skipped:  {stats.failed}" + ("  (mmsearch info --errors)" if stats.failed else ""),
        "folders:  " + ("\n          ".join(_root_line(r, stats) for r in stats.roots) or "none"),
    ]
    if stats.partial:
        lines.append("part-way: " + "\n          ".join(
            f"{escape(film.path)}  {_done(film.indexed_until, film.duration)}"
            for film in stats.partial
        ) + "\n          (searchable for that much; `mmsearch index` goes on where each stopped)")
    if stats.exclusions:
        lines.append("excluded: " + "\n          ".join(escape(e) for e in stats.exclusions))
    for name, space in sorted(stats.spaces.items()):
        lines.append(f"space:    {name}: {space['count']} x {space['dim']} ({space['factory']})")
    lines.append(
        f"on disk:  catalog {stats.catalog_bytes / mb:.1f} MB, vectors {stats.index_bytes / mb:.1f} MB"
        f" (media {stats.media_bytes / mb:.1f} MB)"
    )
    return lines


def item_lines(item: Any) -> list[str]:
    lines = [f"path:     {escape(item.path)}", f"kind:     {item.kind}", f"size:     {item.size} bytes"]
    if item.status != "ok":
        lines.append(f"skipped:  {escape(item.error or '')}")
    if item.width:
        lines.append(f"pixels:   {item.width} x {item.height}")
    if item.taken_at:
        lines.append(f"taken:    {item.taken_at}")
    if item.kind == "video":
        lines += _video_lines(item)
    elif item.duration is not None:
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


def _video_lines(item: Any) -> list[str]:
    long = (item.duration or 0) >= 3600
    parts = [clock(item.duration or 0.0, hours=long)]
    if item.frame_rate:
        parts.append(f"{item.frame_rate:g} fps")
    if item.rotation:
        parts.append(f"turned {item.rotation}° for display")
    if item.sample_rate:
        parts.append(f"sound {item.sample_rate} Hz, {item.channels} channel(s)")
    else:
        parts.append("no sound")
    if item.codec:
        parts.append(escape(item.codec))
    lines = ["video:    " + ", ".join(parts)]
    if item.indexed_until is not None:
        lines.append(
            f"indexed:  part-way, {_done(item.indexed_until, item.duration)} (an interrupted run; "
            "searchable for that much, and `mmsearch index` goes on from there)"
        )
    if item.moments:
        shown = "  ".join(clock(start, hours=long) for start, _ in item.moments[:12])
        more = f"  (+{len(item.moments) - 12} more)" if len(item.moments) > 12 else ""
        lines.append(f"shots:    {len(item.moments)} keyframes at {shown}{more}")
    return lines


def _done(until: float, length: float | None) -> str:
    """How far a film is indexed: "00:40 of 03:00"."""
    long = (length or until) >= 3600
    return f"{clock(until, hours=long)} of {clock(length or 0.0, hours=long)}"


def _root_line(root: str, stats: Any) -> str:
    offline = root in stats.offline_roots
    return escape(root) + ("  (offline: missing or empty at the last run)" if offline else "")
