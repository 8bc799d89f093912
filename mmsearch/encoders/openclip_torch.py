"""OpenCLIP models run by torch: the GPU path, the fallback, and the source of ONNX exports.

`openclip.OpenClipEncoder` is what the registry builds; on CPU it runs exported ONNX towers and
comes here only to export them once (or when a model has no torch-free twin). This module owns:

- resolving `options["pretrained"]` into a weights file on disk, either a pretrained *tag*
  (looked up in the Hugging Face cache first, downloaded only when the hub is reachable) or a
  local checkpoint path;
- failing fast and clearly when weights cannot be had (no network, empty cache, missing file),
  instead of letting the hub client retry for minutes;
- building the model on the device `choose_device` picks (fp16 on CUDA, fp32 on CPU) with the
  preprocessing the weights were trained with;
- embedding images and texts into one shared space.

CLIP maps images and text into the same space, so both index spaces get the image embedding:
`semantic` answers text queries, `visual` answers "more like this image".

Weights for tags live in the Hugging Face cache (`HF_HOME` / `HF_HUB_CACHE`), shared with every
other tool that uses the hub; mmsearch's own `cache_dir` is not used by this family.
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from mmsearch.encoders.base import SEMANTIC, VISUAL, Encoder, ModelSpec, l2_normalise
from mmsearch.encoders.device import Device, choose_device, intra_op_threads
from mmsearch.encoders.hf_tokenizer import cached_folder, hub_howto
from mmsearch.encoders.hub import hub_reachable
from mmsearch.encoders.openclip_spec import spec_weights, text_languages
from mmsearch.encoders.regions import RegionCodes, pooled_patches
from mmsearch.errors import ModelUnavailableError, UnknownModelError

logger = logging.getLogger(__name__)


# CLIP-style BPE uses roughly 1.3-1.5 tokens per English word; 0.65 words per token keeps a
# chunk inside the context (77 tokens -> 50 words) with room for the start/end tokens.
_WORDS_PER_TOKEN = 0.65

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")
# Suggested when an unknown architecture is named: small, common, well-supported ones.
_SUGGESTED_ARCHS = ("ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-B-16-SigLIP", "MobileCLIP-S2", "RN50")


def _weights_howto(arch: str, tag: str) -> str:
    return (
        f"To use {arch}/{tag}, run mmsearch once on a machine with network access so the "
        "weights land in the Hugging Face cache (~/.cache/huggingface, or HF_HOME), or download "
        f"the checkpoint yourself and use the model name 'open_clip:{arch}@/path/to/checkpoint'."
    )


def _looks_like_path(value: str) -> bool:
    return (
        os.path.isfile(value)
        or os.path.isabs(value)
        or value.startswith(("~", "."))
        or os.sep in value
        or (os.altsep is not None and os.altsep in value)
        or value.lower().endswith(_CHECKPOINT_SUFFIXES)
    )


def _check_architecture(arch: str) -> None:
    known = open_clip.list_models()
    if arch in known:
        return
    close = difflib.get_close_matches(arch, known, n=5, cutoff=0.5)
    suggestions = close or [name for name in _SUGGESTED_ARCHS if name in known]
    raise UnknownModelError(
        f"Unknown OpenCLIP architecture {arch!r}. Try one of: {', '.join(suggestions)} "
        f"({len(known)} in all; `open_clip.list_models()` lists them)."
    )


def _hub_file_candidates(hf_hub: str) -> tuple[str, list[str]]:
    """Split an open_clip `hf_hub` entry into (repo id, file names in the order open_clip tries)."""
    from open_clip import pretrained as oc_pretrained

    repo_id, filename = os.path.split(hf_hub)
    filename = filename or oc_pretrained.HF_WEIGHTS_NAME
    # open_clip prefers a .safetensors twin of the named file when the hub has one.
    safe = getattr(oc_pretrained, "_get_safe_alternatives", lambda name: ())
    return repo_id, [*safe(filename), filename]


def _hub_file_cached(repo_id: str, filename: str) -> str | None:
    """The cached copy of one hub file, found without touching the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename)
    # A non-str result is the "known to be missing on the hub" sentinel.
    return found if isinstance(found, str) and os.path.isfile(found) else None


def _cached_hub_weights(hf_hub: str) -> str | None:
    """The cached weights file for an open_clip `hf_hub` entry, if any."""
    repo_id, names = _hub_file_candidates(hf_hub)
    for name in names:
        found = _hub_file_cached(repo_id, name)
        if found:
            return found
    return None


def _cached_url_weights(tag_cfg: Mapping[str, Any]) -> str | None:
    """Where open_clip keeps a tag downloaded by URL rather than from the hub, if present."""
    url = str(tag_cfg.get("url") or "")
    if not url:
        return None
    path = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url))
    return path if os.path.isfile(path) else None


def _resolve_tag(arch: str, tag: str, tag_cfg: Mapping[str, Any]) -> str:
    """A local weights file for pretrained tag `tag`: from the cache, else downloaded."""
    hf_hub = str(tag_cfg.get("hf_hub") or "")
    cached = _cached_hub_weights(hf_hub) if hf_hub else _cached_url_weights(tag_cfg)
    if cached:
        logger.info("Using cached weights for %s/%s: %s", arch, tag, cached)
        return cached
    if not hub_reachable():
        raise ModelUnavailableError(
            f"The weights for OpenCLIP {arch}/{tag} are not in the Hugging Face cache and the "
            f"hub cannot be reached (no network, or HF_HUB_OFFLINE is set). "
            + _weights_howto(arch, tag)
        )
    logger.info("Downloading weights for %s/%s from the Hugging Face hub", arch, tag)
    try:
        path = open_clip.download_pretrained(dict(tag_cfg))
    except Exception as exc:  # the hub client raises many types (HTTP, OS, hub errors)
        raise ModelUnavailableError(
            f"Could not download the weights for OpenCLIP {arch}/{tag}: {_first_line(exc)}. "
            + _weights_howto(arch, tag)
        ) from exc
    if not path or not os.path.isfile(path):
        raise ModelUnavailableError(
            f"Downloading the weights for OpenCLIP {arch}/{tag} gave no file. "
            + _weights_howto(arch, tag)
        )
    return str(path)


def _resolve_weights(arch: str, pretrained: str) -> tuple[str, dict[str, Any]]:
    """Turn `options["pretrained"]` into (weights file, create_model_and_transforms overrides).

    For a tag the overrides carry the preprocessing and activation the weights were trained
    with, which open_clip would otherwise apply only when given the tag itself; we hand it a
    file path instead so that a cached model never triggers a hub request.
    """
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if tag_cfg:
        path = _resolve_tag(arch, pretrained, tag_cfg)
        overrides: dict[str, Any] = {
            "image_mean": tag_cfg.get("mean"),
            "image_std": tag_cfg.get("std"),
            "image_interpolation": tag_cfg.get("interpolation"),
            "image_resize_mode": tag_cfg.get("resize_mode"),
        }
        if tag_cfg.get("quick_gelu"):
            # e.g. the OpenAI weights were trained with QuickGELU; without it their
            # embeddings drift (open_clip only warns about the mismatch).
            overrides["force_quick_gelu"] = True
        return path, {k: v for k, v in overrides.items() if v is not None}
    if _looks_like_path(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            what = "is a directory, not a checkpoint file" if path.is_dir() else "does not exist"
            raise ModelUnavailableError(
                f"OpenCLIP checkpoint {str(path)!r} for {arch} {what}. Give the path of a "
                "weights file (.pt, .bin or .safetensors) as 'open_clip:ARCH@/path/to/file'."
            )
        return str(path), {}
    tags = open_clip.list_pretrained_tags_by_model(arch)
    listing = ", ".join(tags) if tags else "none (use a local checkpoint file)"
    raise UnknownModelError(
        f"OpenCLIP {arch} has no pretrained tag {pretrained!r}. Known tags: {listing}."
    )


def _set_torch_threads() -> None:
    # An explicit OMP/MKL setting is the user's choice; otherwise use every core we may run on.
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return
    cores = intra_op_threads()
    if torch.get_num_threads() < cores:
        torch.set_num_threads(cores)


class TorchOpenClipEncoder(Encoder):
    """An OpenCLIP model run by torch; both image spaces hold the image embedding.

    Attributes:
        spec: The model spec this encoder was built from.
        architecture: The open_clip architecture name, e.g. `ViT-B-32`.
        checkpoint: The weights file that was loaded.
        device: Where the model runs.
    """

    def __init__(
        self, spec: ModelSpec, *, device: str = "auto", cache_dir: Path | None = None
    ) -> None:
        """Build the model, its eval preprocessing and its tokenizer.

        Args:
            spec: Family `open_clip`, options `architecture` (an `open_clip.list_models()`
                name) and `pretrained` (a pretrained tag of that architecture, or the path of a
                checkpoint file).
            device: `auto`, `cpu`, `cuda` or `cuda:N` (see `choose_device`).
            cache_dir: mmsearch's model cache; unused here (tag weights live in the Hugging
                Face cache).

        Raises:
            UnknownModelError: Unknown architecture, or a tag the architecture does not have.
            ModelUnavailableError: The weights (or tokenizer files) cannot be found or loaded,
                or the requested device is unavailable.
        """

        self.spec = spec
        arch, pretrained = spec_weights(spec)
        _check_architecture(arch)
        if cache_dir is not None:
            logger.debug("cache_dir %s is not used by OpenCLIP (Hugging Face cache is)", cache_dir)

        self.architecture = arch
        self.checkpoint, overrides = _resolve_weights(arch, pretrained)
        self.device: Device = choose_device(device)
        if not self.device.is_cuda:
            _set_torch_threads()
        self._dtype = torch.float16 if self.device.half else torch.float32

        # The tokenizer first: it is cheap, and may be the part that needs the hub.
        self._tokenizer = self._build_tokenizer(arch)
        self._model, self._preprocess = self._build_model(arch, overrides)
        self._pil_steps, self._mean, self._std = _split_preprocess(self._preprocess)
        self._tower = ImageTower(self._model)
        self._tokenize_lock = threading.Lock()
        self._dim = self._embed_dim(arch)
        # The tokenizer's: it cuts the text (an HF tower reports its 514 positions instead).
        self._context_length = int(
            getattr(self._tokenizer, "context_length", None)
            or getattr(self._model, "context_length", None)
            or 77
        )
        self.languages = text_languages(arch, (open_clip.get_model_config(arch) or {}).get("text_cfg", {}))
        logger.info(
            "Loaded OpenCLIP %s from %s on %s (%s), %d-d",
            arch,
            self.checkpoint,
            self.device,
            "fp16" if self.device.half else "fp32",
            self._dim,
        )

    # -- construction ---------------------------------------------------------------------

    def _build_model(self, arch: str, overrides: Mapping[str, Any]) -> tuple[torch.nn.Module, Any]:
        text_cfg = (open_clip.get_model_config(arch) or {}).get("text_cfg", {})
        hf_text = text_cfg.get("hf_model_name")
        missing = hf_text and not os.path.isdir(hf_text) and not _hub_file_cached(hf_text, "config.json")
        # Building this text tower reads its config from the hub even when the weights are
        # local; find out now rather than after the hub client's retries.
        if missing and not hub_reachable():
            raise ModelUnavailableError(
                f"OpenCLIP {arch} uses the Hugging Face text model {hf_text!r}, whose config "
                f"is not in the Hugging Face cache and the hub cannot be reached: {hub_howto(hf_text)}."
            )
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch,
                pretrained=self.checkpoint,
                precision="fp16" if self.device.half else "fp32",
                device=self.device.torch_device,
                **overrides,
            )
        except Exception as exc:  # torch.load, safetensors, state-dict and hub errors vary
            if hf_text and isinstance(exc, OSError):
                # The text tower's config comes from the hub even with a local checkpoint.
                hint = (
                    f"{arch} uses the Hugging Face text model {hf_text!r}, "
                    "whose config comes from the hub: run mmsearch once with network access to "
                    "fill the Hugging Face cache"
                )
            else:
                # strict state-dict loading fails when the file is for another architecture;
                # a truncated or foreign file fails inside torch.load / safetensors.
                hint = f"check that the checkpoint is an OpenCLIP {arch} state dict"
            raise ModelUnavailableError(
                f"Could not load OpenCLIP {arch} weights from {self.checkpoint!r} "
                f"({type(exc).__name__}: {_first_line(exc)}); {hint}."
            ) from exc
        model.eval()
        return model, preprocess

    def _build_tokenizer(self, arch: str) -> Any:
        text_cfg = (open_clip.get_model_config(arch) or {}).get("text_cfg", {})
        kwargs: dict[str, Any] = {}
        hf_name = text_cfg.get("hf_tokenizer_name")
        if hf_name and not hub_reachable():
            # transformers would retry the hub for every tokenizer file before falling back to
            # the cache; ask for the cache only, and say what to do when it is not there.
            cached_folder(hf_name, f"The model {self.spec.name}")
            kwargs["local_files_only"] = True
        try:
            return open_clip.get_tokenizer(arch, **kwargs)
        except Exception as exc:  # transformers / hub / fsspec errors vary by version
            source = text_cfg.get("hf_tokenizer_name") or arch
            raise ModelUnavailableError(
                f"The tokenizer for OpenCLIP {arch} ({source}) could not be loaded: "
                f"{_first_line(exc)}. It comes from the Hugging Face hub: "
                + (hub_howto(hf_name) if hf_name else "run mmsearch once with network access") + "."
            ) from exc

    def _embed_dim(self, arch: str) -> int:
        cfg = open_clip.get_model_config(arch) or {}
        if "embed_dim" in cfg:
            return int(cfg["embed_dim"])
        # Not expected for built-in configs; measure it rather than guess.
        with torch.inference_mode():
            tokens = self._tokenize(["a"])
            return int(self._model.encode_text(tokens).shape[-1])

    # -- Encoder --------------------------------------------------------------------------

    @property
    def spaces(self) -> Mapping[str, int]:
        """`{"semantic": d, "visual": d}`: CLIP's one image-text space serves both."""
        return {SEMANTIC: self._dim, VISUAL: self._dim}

    def prepare_image(self, image: Image.Image) -> np.ndarray:
        """Apply the model's eval transform (resize, crop, normalise) to one image.

        Thread-safe: the transform is stateless and does not touch the model.

        Args:
            image: A PIL image (converted to RGB by the transform).

        Returns:
            A `(3, H, W)` float32 array.
        """
        if image.mode != "RGB":
            # Convert before resizing: palette and 16-bit images resize badly in their own mode.
            image = image.convert("RGB")
        if self._pil_steps is None:
            return np.ascontiguousarray(self._preprocess(image).numpy(), dtype=np.float32)
        for step in self._pil_steps:
            image = step(image)
        # ToTensor + Normalize in numpy: same arithmetic, but reader threads stay out of
        # torch's intra-op thread pool, which they would otherwise oversubscribe.
        pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
        return np.ascontiguousarray((pixels - self._mean) / self._std, dtype=np.float32)

    def embed_images(self, batch: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Embed prepared images.

        Args:
            batch: Arrays from `prepare_image`.

        Returns:
            `{"semantic": v, "visual": v}` with `v` of shape `(len(batch), dim)`, float32,
            unit rows (the same array under both keys).
        """
        return self._images(batch, patches=False)[0]

    def embed_images_with_regions(
        self, batch: Sequence[np.ndarray]
    ) -> tuple[dict[str, np.ndarray], list[RegionCodes | None]]:
        """`embed_images`, plus each image's patch tokens through the model's projection,
        pooled into regions (`regions.pooled_patches`); None for towers without patch tokens
        (ResNets, timm towers, attention pooling)."""
        return self._images(batch, patches=True)

    def _images(
        self, batch: Sequence[np.ndarray], *, patches: bool
    ) -> tuple[dict[str, np.ndarray], list[RegionCodes | None]]:
        if len(batch) == 0:
            empty = np.zeros((0, self._dim), dtype=np.float32)
            return {SEMANTIC: empty, VISUAL: empty}, []
        pixels = torch.from_numpy(np.stack([np.asarray(a, dtype=np.float32) for a in batch]))
        pixels = pixels.to(self.device.torch_device, dtype=self._dtype)
        tower = self._tower if patches else self._model.encode_image
        with torch.inference_mode(), self._autocast():
            out = tower(pixels)
        features, tokens = out if isinstance(out, tuple) else (out, None)
        vectors = l2_normalise(features.float().cpu().numpy())
        regions: list[RegionCodes | None] = (
            list(pooled_patches(tokens.float().cpu().numpy())) if tokens is not None else [None] * len(batch)
        )
        return {SEMANTIC: vectors, VISUAL: vectors}, regions

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts with the model's text tower.

        Args:
            texts: Queries or document chunks; longer ones are truncated to the context.

        Returns:
            `(len(texts), dim)` float32, unit rows.
        """
        if len(texts) == 0:
            return np.zeros((0, self._dim), dtype=np.float32)
        tokens = self._tokenize([str(t) for t in texts]).to(self.device.torch_device)
        with torch.inference_mode(), self._autocast():
            features = self._model.encode_text(tokens)
        return l2_normalise(features.float().cpu().numpy())

    def max_text_words(self) -> int:
        """Words that fit one text embedding: about 50 for CLIP's 77-token context."""
        return max(8, int((self._context_length - 2) * _WORDS_PER_TOKEN) + 1)

    # -- helpers --------------------------------------------------------------------------

    def _tokenize(self, texts: list[str]) -> torch.Tensor:
        # Hugging Face fast tokenizers raise "Already borrowed" when used from two threads
        # at once (e.g. concurrent HTTP queries); tokenising is cheap, so serialise it.
        with self._tokenize_lock:
            return self._tokenizer(texts)

    def _autocast(self) -> Any:
        # open_clip's fp16 keeps some layers (LayerNormFp32, timm norms) in fp32; autocast
        # reconciles the dtypes on CUDA. On CPU everything is fp32 and autocast stays off.
        return torch.autocast(
            device_type="cuda" if self.device.is_cuda else "cpu",
            dtype=torch.float16,
            enabled=self.device.is_cuda,
        )


def has_patch_tokens(model: Any) -> bool:
    """Whether the model's image tower is a plain ViT whose patch tokens, after its final norm,
    the projection maps into the joint space as it maps the pooled token (open_clip's
    `VisionTransformer` without attention pooling). ResNet and timm towers are not."""
    visual = getattr(model, "visual", None)
    return (
        isinstance(visual, open_clip.transformer.VisionTransformer)
        and all(hasattr(visual, step) for step in ("_embeds", "transformer", "_pool"))
        and getattr(visual, "attn_pool", None) is None
        and getattr(visual, "pool_type", "") in ("tok", "avg")
        and not getattr(visual, "final_ln_after_pool", False)
        and getattr(visual, "proj", None) is not None
    )


class ImageTower(torch.nn.Module):
    """`encode_image`, and where the tower has them (`has_patch_tokens`) its patch tokens
    through the model's projection, `(batch, patches, dim)`, from the same pass: the
    reranker's regions for OpenCLIP models. The ONNX export is made from this module."""

    def __init__(self, model: Any, *, patches: bool = True) -> None:
        super().__init__()
        self.model = model
        self.patches = patches and has_patch_tokens(model)

    def forward(self, pixels: torch.Tensor) -> Any:
        if not self.patches:
            return self.model.encode_image(pixels)
        visual = self.model.visual
        # `VisionTransformer.forward`'s own steps, keeping the (normed, unprojected) patch
        # tokens it drops. Not its `output_tokens` switch: flipping that on the shared model
        # would hand a tuple to a query's `encode_image` running in another thread.
        pooled, tokens = visual._pool(visual.transformer(visual._embeds(pixels)))
        return pooled @ visual.proj, tokens @ visual.proj


def _split_preprocess(preprocess: Any) -> tuple[list[Any] | None, np.ndarray, np.ndarray]:
    """Split open_clip's eval transform into its PIL steps and the final normalisation.

    Returns `(pil_steps, mean, std)` when the transform is `[PIL steps..., ToTensor,
    Normalize]` (every built-in config); otherwise `(None, ...)` and the whole torch transform
    is used.
    """
    steps = list(getattr(preprocess, "transforms", ()))
    names = [type(step).__name__ for step in steps]
    unit = np.ones((3, 1, 1), dtype=np.float32)
    for i, name in enumerate(names):
        if name in ("ToTensor", "MaybeToTensor"):
            if names[i + 1 :] == ["Normalize"]:
                norm = steps[i + 1]
                mean = np.asarray(norm.mean, dtype=np.float32).reshape(-1, 1, 1)
                std = np.asarray(norm.std, dtype=np.float32).reshape(-1, 1, 1)
                if mean.shape == std.shape == (3, 1, 1):
                    return steps[:i], mean, std
            break
    logger.debug("Unrecognised preprocess %s; using it whole", preprocess)
    return None, unit * 0, unit


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # Callers add their own full stop.
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__
