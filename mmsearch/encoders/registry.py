"""The model registry: presets are data (`presets.json`); families map to implementation modules.

Besides the presets, two name patterns reach any OpenCLIP model:
`open_clip:ARCH/TAG` (pretrained tag, Hugging Face cache) and `open_clip:ARCH@/path/to/weights`,
either with `#int8` appended for the faster mode (8-bit image tower: ~1.5-2x faster indexing,
top-10 results mostly the same; see ARCHITECTURE.md);
two reach any CLAP model (text and sound, no images): `clap:ORG/NAME` (Hugging Face cache) and
`clap:/path/to/folder` (saved with `save_pretrained`). CLAP has no preset, hence no cut-offs.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmsearch.encoders.base import Encoder, ModelSpec
from mmsearch.errors import UnknownModelError

# family -> "module:Class"; the module is imported only when a model of that family is loaded.
_FAMILIES = {
    "offline": "mmsearch.encoders.offline:OfflineEncoder",
    "open_clip": "mmsearch.encoders.openclip:OpenClipEncoder",
    "hash": "mmsearch.encoders.hashing:HashEncoder",
    "clap": "mmsearch.encoders.clap:ClapEncoder",
    "composite": "mmsearch.encoders.composite:CompositeEncoder",
}
_OPEN_CLIP_PREFIX = "open_clip:"
_CLAP_PREFIX = "clap:"
_INT8_SUFFIX = "#int8"


@dataclass(frozen=True)
class Preset:
    name: str
    family: str
    description: str
    options: dict[str, Any]
    cutoffs: dict[str, float]
    """Per space, the score below which a match is not shown (the relevance cut-off): on the
    calibrated 0-1 scale when the preset has `calibration`, else a cosine."""
    calibration: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    """Per space and scale key (`mmsearch.query.calibration.scale_key`: "image", "text",
    "audio-bridge", ...), the (a, b) of the logistic map 1 / (1 + exp(-(a * cosine + b))),
    fitted by `scripts/calibrate.py` (see ARCHITECTURE.md, "Calibrated scores")."""


def _load_presets() -> dict[str, Preset]:
    # Beside this module (importlib.resources would load tempfile, zipfile, shutil, bz2, lzma
    # and random for it: ~7 ms of a cold search).
    raw = json.loads(Path(__file__).with_name("presets.json").read_text())
    return {
        name: Preset(
            name,
            entry["family"],
            entry.get("description", ""),
            entry.get("options", {}),
            entry.get("cutoffs", {}),
            {
                space: {source: (float(ab[0]), float(ab[1])) for source, ab in table.items()}
                for space, table in entry.get("calibration", {}).items()
            },
        )
        for name, entry in raw.items()
    }


_PRESETS: dict[str, Preset] = _load_presets()


def list_models() -> list[Preset]:
    """Every named preset, in registry order."""
    return list(_PRESETS.values())


def add_model_preset(
    name: str,
    family: str,
    options: dict[str, Any],
    description: str = "",
    cutoffs: dict[str, float] | None = None,
    calibration: dict[str, dict[str, tuple[float, float]]] | None = None,
) -> None:
    """Register a preset at run time (plugins, tests). `family` must be a known family."""
    if family not in _FAMILIES:
        raise UnknownModelError(
            f"Unknown model family {family!r}; known families: {', '.join(sorted(_FAMILIES))}."
        )
    _PRESETS[name] = Preset(
        name, family, description, dict(options), dict(cutoffs or {}), dict(calibration or {})
    )


def resolve_model(name: str) -> ModelSpec:
    """Turn a user's model name into a spec, or raise `UnknownModelError` listing valid names."""
    preset = _PRESETS.get(name)
    if preset is not None:
        return ModelSpec(name=name, family=preset.family, options=dict(preset.options))
    if "+" in name:  # one family per modality, e.g. open_clip:ViT-B-32/laion2b_s34b_b79k+clap:laion/clap-htsat-unfused
        parts = [resolve_model(part.strip()) for part in name.split("+")]
        return ModelSpec(
            name=name, family="composite", options={"parts": [p.to_json() for p in parts]}
        )
    if name.startswith(_OPEN_CLIP_PREFIX):
        rest = name[len(_OPEN_CLIP_PREFIX) :]
        fast = rest.endswith(_INT8_SUFFIX)
        rest = rest.removesuffix(_INT8_SUFFIX)
        extra = {"precision": "int8"} if fast else {}
        if "@" in rest:
            arch, _, path = rest.partition("@")
            if arch and path:
                checkpoint = str(Path(path).expanduser().resolve())
                return ModelSpec(
                    name=name,
                    family="open_clip",
                    options={"architecture": arch, "pretrained": checkpoint, **extra},
                )
        elif "/" in rest:
            arch, _, tag = rest.partition("/")
            if arch and tag:
                return ModelSpec(
                    name=name,
                    family="open_clip",
                    options={"architecture": arch, "pretrained": tag, **extra},
                )
    if name.startswith(_CLAP_PREFIX):
        spec = _resolve_clap(name, name[len(_CLAP_PREFIX) :])
        if spec is not None:
            return spec
    valid = ", ".join(_PRESETS)
    raise UnknownModelError(
        f"Unknown model {name!r}. Valid names: {valid}; or any OpenCLIP model as "
        "'open_clip:ARCH/PRETRAINED_TAG' or 'open_clip:ARCH@/path/to/checkpoint' (add '#int8' for the faster 8-bit mode); or any CLAP "
        "model as 'clap:ORG/NAME' or 'clap:/path/to/saved_model'. `mmsearch models` lists them."
    )


def _resolve_clap(name: str, rest: str) -> ModelSpec | None:
    """`clap:/folder` (absolute, `~`, `.`, or an existing folder) or `clap:ORG/NAME` (hub id)."""
    rest = rest.strip()
    if not rest:
        return None
    path = Path(rest).expanduser()
    if path.is_absolute() or rest.startswith(("~", ".")) or path.is_dir():
        return ModelSpec(name=name, family="clap", options={"model": str(path.resolve())})
    org, _, repo = rest.partition("/")
    if org and repo and "/" not in repo and "@" not in rest:
        return ModelSpec(name=name, family="clap", options={"model": rest})
    return None


def upgrade_spec(spec: ModelSpec) -> ModelSpec:
    """The spec an index built by an older mmsearch should now use.

    A preset may gain options for new modalities (audio) without changing what its existing
    options mean; an index recorded with the older, smaller option set gets the new ones, so it
    indexes the new kinds of files. Any other difference leaves the spec as recorded.
    """
    preset = _PRESETS.get(spec.name)
    if preset is None or preset.family != spec.family:
        return spec
    same = all(preset.options.get(key) == value for key, value in spec.options.items())
    if not same or preset.options.keys() == spec.options.keys():
        return spec
    return ModelSpec(name=spec.name, family=spec.family, options=dict(preset.options))


def _preset_of(spec: ModelSpec) -> Preset | None:
    """A spec's preset, else the first preset of its family (for `open_clip:ARCH@/path`); a
    composite takes its first part's (whose text tower fills `semantic`)."""
    if spec.family == "composite":
        return _preset_of(ModelSpec.from_json(spec.options["parts"][0]))
    return _PRESETS.get(spec.name) or next(
        (p for p in _PRESETS.values() if p.family == spec.family), None
    )


def default_cutoffs(spec: ModelSpec) -> dict[str, float]:
    """The relevance cut-offs of a spec's preset (see `Preset.cutoffs`)."""
    preset = _preset_of(spec)
    return dict(preset.cutoffs) if preset else {}


def score_calibration(spec: ModelSpec) -> dict[str, dict[str, tuple[float, float]]]:
    """The score calibration of a spec's preset (see `Preset.calibration`)."""
    preset = _preset_of(spec)
    return {space: dict(table) for space, table in preset.calibration.items()} if preset else {}


def load_encoder(spec: ModelSpec, *, device: str = "auto", cache_dir: Path | None = None) -> Encoder:
    """Build the encoder for `spec` (imports its family's heavy libraries now, not before)."""
    target = _FAMILIES.get(spec.family)
    if target is None:
        raise UnknownModelError(
            f"Model {spec.name!r} has unknown family {spec.family!r}; "
            f"known families: {', '.join(sorted(_FAMILIES))}."
        )
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    encoder: Encoder = cls(spec, device=device, cache_dir=cache_dir)
    return encoder
