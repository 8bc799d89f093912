"""`mmsearch tui` and `mmsearch serve`: launch the other shells (each needs its extra)."""

from __future__ import annotations

from pathlib import Path

import click

from mmsearch.cli.common import MAX_K, PATH, command, errors, fail, index_option, settings, state


@command("tui")
@index_option
def tui(index: Path | None) -> None:
    """Search interactively in the terminal: as you type, by example, with previews.

    Press ? (or F1) inside for every key. Needs the `tui` extra:
    pip install 'mmsearch[tui]'.

    \b
    Example:
        mmsearch tui
        mmsearch tui --index ~/indexes/photos
    """
    try:
        from mmsearch.tui import make_app

        # Settings are read in the app's start-up worker (a bad one gets a screen there).
        tui_app = make_app(index)
    except ModuleNotFoundError as exc:  # textual or textual-image not installed
        fail(
            f"The terminal UI needs the `tui` extra ({exc.name} is missing): "
            "pip install 'mmsearch[tui]'."
        )
    tui_app.run()


@command("serve")
@index_option
@click.option("--host", default="127.0.0.1",
              help="Address to listen on (another than 127.0.0.1 exposes the index).")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, help="Port to listen on.")
@click.option("--token", envvar="MMSEARCH_TOKEN", default=None, show_default=False,
              help="Require `Authorization: Bearer TOKEN` on every request ($MMSEARCH_TOKEN).")
@click.option("--folder", type=PATH, multiple=True,
              help="A folder indexing jobs may index, besides the indexed ones (repeatable).")
@click.option("--cors-origin", multiple=True,
              help="A web origin allowed to call from a browser (repeatable; none by default).")
@click.option("--max-k", type=click.IntRange(1, MAX_K), default=1000, help="The most hits one request returns.")
@click.option("--max-upload-mb", type=click.IntRange(1, 4096), default=32,
              help="The largest request body (uploads), in MiB.")
@click.option("--request-seconds", type=click.FloatRange(1, 3600), default=60.0,
              help="Abandon a request not answered by then.")
@click.option("--watch", is_flag=True, help="Also follow the indexed folders (as `mmsearch watch`).")
def serve(
    index: Path | None,
    host: str,
    port: int,
    token: str | None,
    folder: tuple[Path, ...],
    cors_origin: tuple[str, ...],
    max_k: int,
    max_upload_mb: int,
    request_seconds: float,
    watch: bool,
) -> None:
    """Serve the index over HTTP (FastAPI): search, items, thumbnails, indexing jobs, and
    clip-retrieval's /knn-service API. Interactive docs at /docs, the schema at /openapi.json.

    \b
    Example:
        mmsearch serve
        mmsearch serve --index ~/photos-index --port 9000 --token s3cret
        mmsearch serve --watch     # new and changed files are found moments later
        curl 'http://127.0.0.1:8765/search?q=a+red+car&k=5'
    """
    with errors():
        try:
            import uvicorn

            from mmsearch.server import ServiceConfig, make_app
        except ImportError as exc:
            fail(f"The HTTP service needs its extra packages ({exc.name} is missing): "
                 "pip install 'mmsearch[server]'.")
        chosen = settings(index)
        config = ServiceConfig(
            token=token or None,
            folders=tuple(str(f) for f in folder),
            cors_origins=tuple(cors_origin),
            max_k=max_k,
            max_upload_bytes=max_upload_mb * 1024 * 1024,
            request_seconds=request_seconds,
            watch=watch,
        )
        api = make_app(chosen.index_path(), settings=chosen, config=config)
        if host not in ("127.0.0.1", "localhost", "::1") and not token:
            click.echo(
                f"Warning: listening on {host} without --token: anyone who reaches this port "
                "can search the index and read its files.", err=True,
            )
        click.echo(f"Serving {api.state.service.index} on http://{host}:{port} (docs: /docs)", err=True)
        uvicorn.run(api, host=host, port=port, log_level="info" if state["verbose"] else "warning")
