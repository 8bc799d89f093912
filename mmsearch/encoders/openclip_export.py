"""Export an OpenCLIP model's towers to ONNX once, checked against open_clip's own output.

This is the only OpenCLIP module that needs torch on CPU, and it runs once per model (and
checkpoint): it builds the model with open_clip, writes the text tower and the image tower as
separate ONNX files whose weights sit in a side file (onnxruntime maps it instead of parsing a
protobuf copy), or, for plain CLIP text towers, the text weights for `clip_text_numpy` (a
query then imports no runtime at all); it copies the tokenizer (CLIP's merge list, or the
Hugging Face tokenizer of an `hf_model_name` text tower such as XLM-R's, see `hf_tokenizer`) and
records what a query needs (dimension, context, tokenizer, preprocessing) in `meta.json`.
The folder becomes visible under its final name only once every file is written and checked.

The check: both towers must give, on sample photos and captions, vectors whose cosine with
open_clip's is at least `FIDELITY`; otherwise the export is refused and the caller falls back
to torch.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.encoders.clip_text_numpy import NumpyTextTower, write_weights
from mmsearch.encoders.hf_tokenizer import TOKENIZER_FILE, HfTokenizer, save_backend
from mmsearch.encoders.onnx_cache import quiet_export
from mmsearch.encoders.openclip_torch import ImageTower
from mmsearch.errors import ModelUnavailableError

logger = logging.getLogger(__name__)

# Bump when the exported files change meaning, so cached exports are made again.
# 2: the image tower also gives its patch tokens through the projection (`PATCHES`).
EXPORT_VERSION = 2
FIDELITY = 0.9999
"""Least cosine between an exported tower's vector and open_clip's on the same input."""

META = "meta.json"
TEXT_ONNX, IMAGE_ONNX, IMAGE_INT8_ONNX = "text.onnx", "image.onnx", "image-int8.onnx"
MERGES = "bpe_merges.txt"  # open_clip's bpe_simple_vocab_16e6.txt.gz, decompressed
FEATURES, PATCHES = "features", "patches"
"""Output names of the image tower: the image embedding, and (ViT towers) the patch tokens
through the model's projection (`openclip_torch.ImageTower`)."""

# Captions and sizes used to check an export when the caller gives no photos of its own.
_CHECK_CAPTIONS = (
    "a photo of a dog",
    "An airport filled with large passenger jets parked next to each other.",
    "two cats asleep on a red sofa",
    "一只猫在红色的沙发上睡觉",  # multilingual towers (XLM-R) read it; CLIP's BPE takes any text
    "Ünïcödé café — naïve façade &amp; 東京",
    "x " * 100,  # longer than the context: cut at 77 tokens
)
# open_clip's Hugging Face text towers whose padding never changes a vector (see `HfTokenizer.trim`).
_TRIMMABLE_POOLERS = ("MeanPooler", "ClsPooler", "ClsLastHiddenStatePooler")


class ExportUnsupported(Exception):
    """This model's towers or preprocessing cannot run without torch (use the torch path)."""


def checkpoint_identity(path: str) -> dict[str, Any]:
    """What tells a checkpoint file apart cheaply (compared at every load)."""
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def export_towers(source: Any, target: Path, *, photos: list[Any] | None = None) -> dict[str, Any]:
    """Write the checked towers of a loaded torch model into the new folder `target`.

    Args:
        source: A `TorchOpenClipEncoder` on CPU (its model, transform and tokenizer are used).
        target: The export folder; written under a temporary name, then renamed.
        photos: PIL images to check the image tower on (default: synthetic scenes).

    Returns:
        The metadata written to `meta.json`.

    Raises:
        ExportUnsupported: The tokenizer or preprocessing has no torch-free twin here.
        ModelUnavailableError: The export ran but does not reproduce open_clip.
    """
    import open_clip
    import torch

    model, preprocess, tokenizer = source._model, source._preprocess, source._tokenizer
    arch, checkpoint = source.architecture, source.checkpoint
    hf_tokenizer = _check_tokenizer(tokenizer)
    steps = preprocess_steps(preprocess)
    context = int(source._context_length)
    texts = list(_CHECK_CAPTIONS)
    tokens = tokenizer(texts)
    pixels = torch.stack([preprocess(im) for im in (photos or _synthetic_photos())])
    image_tower = ImageTower(model)
    with torch.inference_mode():
        want_text = model.encode_text(tokens).float().numpy()
        want_image = model.encode_image(pixels).float().numpy()
        want_patches = image_tower(pixels)[1].float().numpy() if image_tower.patches else None

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        # The tokenizer first: a mismatch is found before a minute of exporting.
        text_cfg = (open_clip.get_model_config(arch) or {}).get("text_cfg", {})
        hf_name = str(text_cfg.get("hf_tokenizer_name") or getattr(hf_tokenizer, "name_or_path", ""))
        ours, tokenizer_meta = _write_tokenizer(hf_tokenizer, hf_name, work, context)
        ids = ours(texts)
        if not np.array_equal(ids, tokens.numpy()):
            raise ExportUnsupported(f"the tokenizer of {arch} differs from open_clip's own")
        text_tower, trimmed = _text_tower(model, torch)
        # Plain CLIP text towers run in numpy (no runtime to import for a query); others in
        # onnxruntime.
        numpy_text = hf_tokenizer is None and trimmed and write_weights(model, work)
        if not numpy_text:
            axes = {0: "batch", 1: "tokens"} if trimmed else {0: "batch"}
            export_onnx(text_tower, tokens, work / TEXT_ONNX, "tokens", axes)
        image_outputs = [FEATURES, PATCHES] if image_tower.patches else [FEATURES]
        export_onnx(image_tower, pixels, work / IMAGE_ONNX, "pixels", {0: "batch"}, image_outputs)
        trim = ours.trim if trimmed else (lambda rows: rows)
        if numpy_text:
            text_run = NumpyTextTower(work)
        else:
            text_session = _session(work / TEXT_ONNX)
            text_run = lambda rows: _run(text_session, "tokens", rows)
        image_session = _session(work / IMAGE_ONNX)
        # Each input alone (a text at its own length) and all in one batch.
        got_text = [text_run(trim(ids[i : i + 1])) for i in range(len(ids))]
        got_image = [_run(image_session, "pixels", p[None]) for p in pixels.numpy()]
        if want_patches is not None:  # every patch of every photo, in one batch
            got_patches = np.asarray(image_session.run([PATCHES], {"pixels": pixels.numpy()})[0])
            patch_fidelity = _least_cosine(
                got_patches.reshape(-1, got_patches.shape[-1]),
                want_patches.reshape(-1, want_patches.shape[-1]),
                f"{arch} image tower's patch tokens",
            )
        fidelity = {
            "text": min(
                _least_cosine(np.concatenate(got_text), want_text, f"{arch} text tower"),
                _least_cosine(text_run(trim(ids)), want_text, f"{arch} text tower"),
            ),
            "image": min(
                _least_cosine(np.concatenate(got_image), want_image, f"{arch} image tower"),
                _least_cosine(_run(image_session, "pixels", pixels.numpy()), want_image, f"{arch} image tower"),
            ),
        }
        if want_patches is not None:
            fidelity["patches"] = patch_fidelity
        del text_run, image_session
        meta = {
            "export_version": EXPORT_VERSION,
            "architecture": arch,
            "checkpoint": checkpoint_identity(checkpoint),
            "checkpoint_sha256": file_sha256(checkpoint),
            "open_clip": open_clip.__version__,
            "dim": int(want_text.shape[1]),
            "context_length": context,
            "tokenizer": tokenizer_meta,
            "trim_tokens": trimmed,
            "patches": want_patches is not None,
            "text_runtime": "numpy" if numpy_text else "onnxruntime",
            "preprocess": steps,
            "fidelity": fidelity,
        }
        (work / META).write_text(json.dumps(meta, indent=1))
        try:
            os.replace(work, target)
        except OSError:
            if not (target / META).is_file():  # not another process's finished export
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("Exported OpenCLIP %s towers to %s (least cosine %s)", arch, target, fidelity)
    return meta


# --------------------------------------------------------------------------------------------
# The towers as torch modules


def _text_tower(model: Any, torch: Any) -> tuple[Any, bool]:
    """The text tower, and whether it may be given only the tokens up to the batch's last real
    one: CLIP's causal transformer (cut after its end token), a Hugging Face tower that masks
    its padding out (cut after the last non-padding token)."""
    import open_clip

    pool = getattr(model, "text_pool_type", None)
    causal = getattr(model, "attn_mask", None) is not None
    if type(model) is open_clip.CLIP and causal and pool == "argmax":
        return TrimmedTextTower(model, torch), True
    text = getattr(model, "text", None)
    if type(text).__name__ == "HFTextEncoder" and type(text.pooler).__name__ in _TRIMMABLE_POOLERS:
        return FullTextTower(model), True
    return FullTextTower(model), False


def _module_base() -> type:
    import torch

    return torch.nn.Module


class FullTextTower(_module_base()):  # type: ignore[misc]
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Any) -> Any:
        return self.model.encode_text(tokens)


class TrimmedTextTower(_module_base()):  # type: ignore[misc]
    """CLIP's `encode_text` on a sequence cut after its end token: the position embeddings and
    the causal mask are cut to the same length (open_clip always uses the full context)."""

    def __init__(self, model: Any, torch: Any) -> None:
        super().__init__()
        self.model = model
        self.torch = torch

    def forward(self, tokens: Any) -> Any:
        model = self.model
        length = tokens.shape[1]
        cast = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:length].to(cast)
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = model.ln_final(x)
        pooled = x[self.torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
        projection = model.text_projection
        if isinstance(projection, self.torch.nn.Linear):
            return projection(pooled)
        return pooled @ projection


# --------------------------------------------------------------------------------------------
# Export, run, compare


def export_onnx(
    module: Any, sample: Any, target: Path, name: str, axes: dict[int, str],
    outputs: list[str] | None = None,
) -> None:
    """torch -> ONNX with the weights in a side file `<target>.data`, dynamic along `axes`;
    the module's outputs are named `outputs` (default: one, `FEATURES`).

    The dynamo exporter is used: the TorchScript tracer bakes the sample's batch size and
    length into nn.MultiheadAttention's reshapes.
    """
    import torch
    from torch.export import Dim

    shapes = ({axis: Dim(f"{name}_{label}", min=1, max=4096) for axis, label in axes.items()},)
    with quiet_export():
        torch.onnx.export(
            module,
            (sample,),
            str(target),
            input_names=[name],
            output_names=outputs or [FEATURES],
            dynamic_shapes=shapes,
            opset_version=18,
            dynamo=True,
            external_data=True,
            verbose=False,
        )


def _session(path: Path) -> Any:
    from mmsearch.encoders.device import Device
    from mmsearch.encoders.onnx_cache import session

    return session(path, Device(kind="cpu"), prepack=False)


def _run(session: Any, name: str, feed: np.ndarray) -> np.ndarray:
    return np.asarray(session.run([FEATURES], {name: feed})[0], dtype=np.float32)


def least_cosine(got: np.ndarray, want: np.ndarray) -> float:
    """The smallest row-wise cosine between two sets of vectors."""
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    want = want / np.linalg.norm(want, axis=1, keepdims=True)
    return float(np.min(np.sum(got * want, axis=1)))


def _least_cosine(got: np.ndarray, want: np.ndarray, what: str) -> float:
    cos = least_cosine(got, want)
    if not cos >= FIDELITY:
        raise ModelUnavailableError(
            f"The ONNX export of the OpenCLIP {what} differs from open_clip (cosine {cos:.5f} < "
            f"{FIDELITY}); this torch/onnxruntime pair is not supported, so torch is used."
        )
    return cos


def _synthetic_photos() -> list[Any]:
    """Three images with edges, gradients and flat areas, in the sizes photos come in."""
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for w, h in ((640, 480), (300, 500), (256, 256)):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 127 // (w + h)], -1)
        noise = rng.integers(0, 40, (h, w, 3))
        out.append(Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)))
    return out


# --------------------------------------------------------------------------------------------
# Tokenizer and preprocessing: only what has a torch-free twin


def _check_tokenizer(tokenizer: Any) -> Any:
    """None for CLIP's own tokenizer; for open_clip's `HFTokenizer`, the transformers tokenizer
    inside it. Raises `ExportUnsupported` for anything that `ClipTokenizer` or `HfTokenizer`
    does not reproduce."""
    name = type(tokenizer).__name__
    clean = getattr(getattr(tokenizer, "clean_fn", None), "__name__", "")
    if name == "SimpleTokenizer" and clean == "_clean_lower" and tokenizer.reduction_fn is None:
        return None
    if name == "HFTokenizer" and clean == "_clean_whitespace":
        inner = tokenizer.tokenizer
        plain = not getattr(tokenizer, "tokenizer_mode", "") and not tokenizer.strip_sep_token
        if plain and getattr(inner, "backend_tokenizer", None) is not None and inner.pad_token_id is not None:
            return inner
    raise ExportUnsupported(f"tokenizer {name} ({clean or 'custom'}) has no torch-free twin")


def _write_tokenizer(hf: Any, hf_name: str, work: Path, context: int) -> tuple[Any, dict[str, Any]]:
    """Write the tokenizer's files into the export (CLIP's merge list, or transformers'
    tokenizer `hf` of the hub's `hf_name`); (its torch-free twin, its meta entry)."""
    if hf is None:
        import open_clip.tokenizer as oc_tokenizer

        from mmsearch.encoders.clip_tokenizer import ClipTokenizer

        with gzip.open(oc_tokenizer.default_bpe()) as packed:
            (work / MERGES).write_bytes(packed.read())
        return ClipTokenizer(work / MERGES, context), {"kind": "clip"}
    save_backend(hf.backend_tokenizer, work / TOKENIZER_FILE)
    pad_id = int(hf.pad_token_id)
    meta = {"kind": "hf", "file": TOKENIZER_FILE, "pad_id": pad_id, "name": hf_name}
    return HfTokenizer(work / TOKENIZER_FILE, context, pad_id), meta


def preprocess_steps(preprocess: Any) -> dict[str, Any]:
    """open_clip's eval transform as data: resize, centre crop, RGB, normalise.

    Only the transform of every plain CLIP config is recognised (`Resize(int)` on the shorter
    side or `Resize((h, w))`, `CenterCrop`, RGB conversion, `ToTensor`, `Normalize`); anything
    else raises `ExportUnsupported`.
    """
    out: dict[str, Any] = {}
    for step in getattr(preprocess, "transforms", ()):
        name = type(step).__name__
        if name == "Resize":
            size = step.size
            out["resize"] = list(size) if isinstance(size, (list, tuple)) else int(size)
            if isinstance(out["resize"], list) and len(out["resize"]) == 1:
                out["resize"] = out["resize"][0]
            out["interpolation"] = str(step.interpolation.value)
            if getattr(step, "max_size", None) is not None:
                raise ExportUnsupported("Resize with max_size")
        elif name == "CenterCrop":
            out["crop"] = [int(v) for v in step.size]
        elif name == "Normalize":
            out["mean"] = [float(v) for v in step.mean]
            out["std"] = [float(v) for v in step.std]
        elif name in ("ToTensor", "MaybeToTensor"):
            continue
        elif name == "MaybeConvertMode" and getattr(step, "mode", "") == "RGB":
            continue  # images are made RGB before resizing anyway
        elif name == "function" and getattr(step, "__name__", "") == "_convert_to_rgb":
            continue
        else:
            raise ExportUnsupported(f"preprocessing step {name} has no torch-free twin")
    if not {"resize", "mean", "std"} <= out.keys():
        raise ExportUnsupported("preprocessing without resize and normalisation")
    return out
