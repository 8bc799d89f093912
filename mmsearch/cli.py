"""The `mmsearch` command: a thin shell over `Library` that turns its errors into one clean line."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mmsearch.errors import MmsearchError

app = typer.Typer(
    name="mmsearch",
    help="Local multimodal search: index images and text documents, search by text or example.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

IndexOpt = Annotated[
    Optional[Path],
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
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Library errors become one line on stderr and exit code 1; Ctrl-C exits 130."""
    try:
        yield
    except MmsearchError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        typer.echo("Interrupted; committed work is kept (run the same command to resume).", err=True)
        raise typer.Exit(130) from None


def _settings(index: Path | None, **overrides: Any) -> Any:
    from mmsearch.config import Settings

    return Settings().with_overrides(index=index, **overrides)


def _plain(plain: bool) -> bool:
    return plain or not sys.stdout.isatty()


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command()
def index(
    folders: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Folders (or files) to index; none re-scans the indexed folders."),
    ] = None,
    index: IndexOpt = None,
    model: Annotated[
        Optional[str],
        typer.Option(help="Model for a new index (`mmsearch models` lists them)."),
    ] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Files per model batch.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Index folder trees: new and changed files are encoded, deleted ones dropped.

    Example:
        mmsearch index ~/Pictures ~/Notes
        mmsearch index            # bring every indexed folder up to date
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from mmsearch.library import Library

    with _errors():
        settings = _settings(index, batch_size=batch_size)
        with Library.open(settings.index_path(), model=model, settings=settings) as lib:
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
                    bar.update(tasks[p.phase], completed=p.done, total=p.total or None)

                report = lib.index(folders, progress=on_progress)
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


@app.command()
def search(
    query: Annotated[Optional[str], typer.Argument(help="What to look for.")] = None,
    image: Annotated[
        Optional[list[Path]], typer.Option("--image", "-i", help="Example image: more like this.")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--top", help="At most this many results.")] = 10,
    min_score: Annotated[
        Optional[float], typer.Option(help="Hide matches below this cosine (default: the model's).")
    ] = None,
    kind: Annotated[
        Optional[list[str]], typer.Option(help="Only this kind: image or text (repeatable).")
    ] = None,
    folder: Annotated[
        Optional[list[Path]], typer.Option(help="Only under this folder (repeatable).")
    ] = None,
    ext: Annotated[
        Optional[list[str]], typer.Option(help="Only this file extension, e.g. jpg (repeatable).")
    ] = None,
    index: IndexOpt = None,
    json_out: JsonOpt = False,
    plain: PlainOpt = False,
) -> None:
    """Search by text, by example image, or both.

    Text may weight terms and exclude others: 2:"red car" street -night

    Example:
        mmsearch search "a cat on a sofa"
        mmsearch search --image holiday.jpg -k 5
        mmsearch search "beach" --image sunset.jpg --kind image --json
    """
    from mmsearch.library import Library

    with _errors():
        settings = _settings(index)
        with Library.open(settings.index_path(), create=False, settings=settings) as lib:
            hits = lib.search(
                query,
                image=[str(p) for p in image or []],
                k=k,
                min_score=min_score,
                kinds=kind or (),
                folders=[str(f) for f in folder or []],
                extensions=ext or (),
            )
    if json_out:
        _print_json([h.to_json() for h in hits])
    elif _plain(plain):
        for h in hits:
            typer.echo(f"{h.score:.4f}\t{h.kind}\t{h.path}")
    else:
        from rich.console import Console
        from rich.table import Table

        if not hits:
            typer.echo("No results above the cut-off.")
            return
        table = Table("#", "score", "kind", "path", box=None)
        for i, h in enumerate(hits, 1):
            table.add_row(str(i), f"{h.score:.3f}", h.kind, h.path)
        Console().print(table)


@app.command()
def info(
    index: IndexOpt = None,
    errors: Annotated[bool, typer.Option("--errors", help="List the files that were skipped.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show what is indexed: model, counts, folders, sizes (and skipped files with --errors).

    Example:
        mmsearch info
        mmsearch info --errors --json
    """
    from mmsearch.library import Library

    with _errors():
        settings = _settings(index)
        with Library.open(settings.index_path(), create=False, settings=settings) as lib:
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
            typer.echo(f"{s.path}\t{s.reason}")
        return
    mb = 1024 * 1024
    lines = [
        f"index:    {stats.path}",
        f"model:    {stats.model}",
        "items:    " + (", ".join(f"{n} {kind}" for kind, n in sorted(stats.items.items())) or "none"),
        f"skipped:  {stats.failed}" + ("  (mmsearch info --errors)" if stats.failed else ""),
        "folders:  " + ("\n          ".join(stats.roots) or "none"),
    ]
    for name, space in sorted(stats.spaces.items()):
        lines.append(f"space:    {name}: {space['count']} x {space['dim']} ({space['factory']})")
    lines.append(
        f"on disk:  catalog {stats.catalog_bytes / mb:.1f} MB, vectors {stats.index_bytes / mb:.1f} MB"
        f" (media {stats.media_bytes / mb:.1f} MB)"
    )
    typer.echo("\n".join(lines))


@app.command()
def remove(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to forget.")],
    index: IndexOpt = None,
) -> None:
    """Remove files or folders from the index (the files themselves are not touched).

    Example:
        mmsearch remove ~/Pictures/old
    """
    from mmsearch.library import Library

    with _errors():
        settings = _settings(index)
        with Library.open(settings.index_path(), create=False, settings=settings) as lib:
            n = lib.remove(paths)
    typer.echo(f"Removed {n} item(s).")


@app.command()
def models(json_out: JsonOpt = False) -> None:
    """List the model presets (and the OpenCLIP name patterns).

    Example:
        mmsearch models
    """
    from mmsearch.encoders.registry import list_models

    presets = list_models()
    if json_out:
        _print_json([{"name": p.name, "family": p.family, "description": p.description} for p in presets])
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
    model: Annotated[Optional[str], typer.Option(help="Model to check (default: the configured one).")] = None,
    index: IndexOpt = None,
) -> None:
    """Check the installation: libraries, compute device, where indexes and caches live.

    Example:
        mmsearch doctor --prepare
    """
    import importlib.metadata as md
    import platform

    from mmsearch.encoders.device import choose_device
    from mmsearch.encoders.registry import load_encoder, resolve_model

    with _errors():
        settings = _settings(index)
        spec = resolve_model(model or settings.model)
        typer.echo(f"python      {platform.python_version()}")
        for package in ("mmsearch", "faiss-cpu", "faiss-gpu", "torch", "onnxruntime", "open-clip-torch"):
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


def main() -> None:
    app()

