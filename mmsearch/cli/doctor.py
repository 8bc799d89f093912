"""`mmsearch models` and `mmsearch doctor`: what can be used, and whether the install and the
index are sound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mmsearch.cli.common import (
    command,
    errors,
    fail,
    index_option,
    json_option,
    print_json,
    settings,
)
from mmsearch.present import escape


@command("models")
@json_option
def models(json_out: bool) -> None:
    """List the model presets (and the OpenCLIP name patterns).

    \b
    Example:
        mmsearch models
    """
    from mmsearch.encoders.registry import list_models

    presets = list_models()
    if json_out:
        print_json([{"name": p.name, "family": p.family, "description": p.description} for p in presets])
        return
    for p in presets:
        click.echo(f"{p.name}\n    {p.description}")
    click.echo(
        "open_clip:ARCH/PRETRAINED_TAG\n    Any OpenCLIP model and tag (Hugging Face cache).\n"
        "open_clip:ARCH@/path/to/checkpoint\n    Any OpenCLIP architecture with local weights."
    )


@command("doctor")
@click.option("--prepare", is_flag=True, help="Load the model now, converting and caching it.")
@click.option("--model", default=None, help="Model to check (default: the configured one).")
@click.option("--repair", is_flag=True,
              help="Rebuild the index's vector files and full-text index from its catalog.")
@index_option
def doctor(prepare: bool, model: str | None, repair: bool, index: Path | None) -> None:
    """Check the installation and the index: libraries, device, where indexes and caches live,
    then the index in full (catalog integrity, vector-file checksums, counts). Exits 1 when the
    index has problems; --repair rebuilds what can be rebuilt from the catalog.

    \b
    Example:
        mmsearch doctor --prepare
        mmsearch doctor --repair --index ~/photos-index
    """
    import importlib.metadata as md
    import platform

    from mmsearch.encoders.device import choose_device
    from mmsearch.encoders.registry import load_encoder, resolve_model

    with errors():
        chosen = settings(index, model=model)
        spec = resolve_model(chosen.model)
        click.echo(f"python      {platform.python_version()}")
        for package in ("mmsearch", "faiss-cpu", "faiss-gpu", "torch", "onnxruntime", "open-clip-torch"):
            try:
                click.echo(f"{package:<11} {md.version(package)}")
            except md.PackageNotFoundError:
                pass
        import faiss

        device = choose_device(chosen.device)
        click.echo(f"device      {device.torch_device}{' (fp16)' if device.half else ''}")
        click.echo(f"faiss GPUs  {faiss.get_num_gpus()}")
        click.echo(f"index       {chosen.index_path()}")
        click.echo(f"model cache {chosen.model_cache()}")
        click.echo(f"model       {spec.name}")
        if prepare:
            encoder = load_encoder(spec, device=chosen.device, cache_dir=chosen.model_cache())
            encoder.embed_texts(["ready"])
            spaces = ", ".join(f"{s} {d}-d" for s, d in encoder.spaces.items())
            click.echo(f"model ready ({spaces})")
        _doctor_index(chosen, repair)


def _doctor_index(chosen: Any, repair: bool) -> None:
    """The index part of `doctor`: check everything, repair on request, exit 1 on problems."""
    from mmsearch.library import Library

    folder = chosen.index_path()
    if not (folder / "catalog.db").exists():
        click.echo(f"index check no index at {escape(str(folder))} yet")
        return
    with Library.open(folder, create=False, readonly=not repair, settings=chosen) as lib:
        problems = lib.check()
        if repair and problems:
            for action in lib.repair():
                click.echo(f"repaired    {action}")
            problems = lib.check()
    if not problems:
        click.echo("index check ok (catalog integrity, vector checksums and counts)")
        return
    for problem in problems:
        click.echo(f"problem     {escape(problem)}")
    fail(
        f"The index at {folder} has {len(problems)} problem(s); `mmsearch doctor --repair` "
        "rebuilds its vector files from the catalog."
    )
