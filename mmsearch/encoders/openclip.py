"""The OpenCLIP encoder family: real CLIP models from open-clip-torch, run without torch on CPU.

On CPU a model's text and image towers are exported to ONNX once per model and checkpoint
(`openclip_export`, checked against open_clip's own output), kept in the model cache: the image
tower runs in onnxruntime, a plain CLIP text tower in numpy on mapped weights
(`clip_text_numpy`; others in onnxruntime). A text query loads only the text tower, an image
example only the image tower, and neither imports torch (which alone costs seconds and ~500 MB). The tokenizer and the
image transform have torch-free twins (`clip_tokenizer`; `hf_tokenizer` for Hugging Face text
towers such as XLM-R's; `_Preprocess`). On a GPU, when the model has no torch-free twin
(unusual tokenizers or transforms), or with `MMSEARCH_OPENCLIP_BACKEND=torch`, the model runs
in torch (`openclip_torch`).

The export folder is found from the spec alone (architecture, weights option, open_clip
version, export version), so a query never resolves a pretrained tag through open_clip; it is
used only while the checkpoint file it was made from has the same size and modification time
(otherwise the checkpoint is hashed, and the export refreshed or made again).

CLIP maps images and text into the same space, so both index spaces get the image embedding:
`semantic` answers text queries, `visual` answers "more like this image".
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.encoders.base import SEMANTIC, VISUAL, Encoder, ModelSpec, l2_normalise
from mmsearch.encoders.device import Device, choose_device
from mmsearch.encoders.openclip_spec import spec_weights, text_languages
from mmsearch.encoders.regions import RegionCodes, pooled_patches
from mmsearch.errors import ModelUnavailableError
from mmsearch.media.kinds import IMAGE

if TYPE_CHECKING:  # PIL loads with the first image: a text query never needs it
    from PIL import Image

logger = logging.getLogger(__name__)

BACKEND_ENV = "MMSEARCH_OPENCLIP_BACKEND"
"""`torch` forces the torch path on CPU too (for comparison, or if an export misbehaves)."""

# Same value as openclip_export.EXPORT_VERSION (which imports torch, so it is not imported here).
_EXPORT_VERSION = 2
WORD_PROMPT = "a photo of a {name}."
"""How a query word is written for CLIP before it is matched with an image's patch regions."""
_IMAGE_CHUNK = 8  # images per image-tower run (memory, measured; see _Towers.images)
_WORDS_PER_TOKEN = 0.65  # CLIP BPE: ~1.3-1.5 tokens per English word (see openclip_torch)

_RESAMPLE = {
    "nearest": "NEAREST",
    "bilinear": "BILINEAR",
    "bicubic": "BICUBIC",
    "lanczos": "LANCZOS",
    "box": "BOX",
    "hamming": "HAMMING",
}
"""open_clip's interpolation names -> `PIL.Image.Resampling` members (named: PIL loads with the
first image, not with the model)."""


class OpenClipEncoder(Encoder):
    """An OpenCLIP model as an mmsearch encoder; both image spaces hold the image embedding.

    Attributes:
        spec: The model spec this encoder was built from.
        architecture: The open_clip architecture name, e.g. `ViT-B-32`.
        device: Where the model runs.
        export_dir: The ONNX export in use, or None on the torch path.
    """

    def __init__(
        self, spec: ModelSpec, *, device: str = "auto", cache_dir: Path | None = None
    ) -> None:
        """Find (or make) the model's ONNX export, or load it in torch.

        Nothing heavy is loaded here on the ONNX path: each tower opens on first use.

        Args:
            spec: Family `open_clip`, options `architecture` (an `open_clip.list_models()`
                name) and `pretrained` (a pretrained tag of that architecture, or the path of a
                checkpoint file).
            device: `auto`, `cpu`, `cuda` or `cuda:N` (see `choose_device`).
            cache_dir: Where ONNX exports are kept (default: the settings' model cache).

        Raises:
            UnknownModelError: Unknown architecture, or a tag the architecture does not have.
            ModelUnavailableError: The weights (or tokenizer files) cannot be found or loaded,
                or the requested device is unavailable.
        """
        self.spec = spec
        options = dict(spec.options)
        self.architecture, self._pretrained = spec_weights(spec)
        self.device: Device = choose_device(device)
        self._torch: Any = None
        self.export_dir: Path | None = None
        self._meta: dict[str, Any] = {}
        if not self.device.is_cuda and os.environ.get(BACKEND_ENV, "onnx") != "torch":
            root = cache_dir if cache_dir is not None else _default_cache()
            self.export_dir = export_folder(Path(root).expanduser(), spec)
            self._meta = _fresh_meta(self.export_dir) or self._export()
        if self._torch is None and not self._meta:
            self._torch = self._load_torch()
        if self._meta:
            tokenizer = self._meta.get("tokenizer") or {}  # exports before it: CLIP's
            self.languages = text_languages(
                self.architecture, {"hf_tokenizer_name": tokenizer.get("name", "")}
            )
            self._dim = int(self._meta["dim"])
            self._context_length = int(self._meta["context_length"])
            self._preprocess = _Preprocess(self._meta["preprocess"])
            self.input_size = self._preprocess.shorter_side
            int8 = options.get("precision") == "int8"
            self._towers = _Towers(self.export_dir, self.device, int8=int8)  # type: ignore[arg-type]
        else:
            self.export_dir = None
            self.languages = self._torch.languages
            self._dim = self._torch.spaces[SEMANTIC]
            self._context_length = self._torch._context_length
            self.input_size = self._torch.input_size

    @property
    def checkpoint(self) -> str:
        """The weights file the model comes from."""
        if self._torch is not None:
            return str(self._torch.checkpoint)
        return str(self._meta["checkpoint"]["path"])

    # -- making the export ------------------------------------------------------------------

    def _load_torch(self) -> Any:
        from mmsearch.encoders.openclip_torch import TorchOpenClipEncoder

        return TorchOpenClipEncoder(self.spec, device=str(self.device))

    def _export(self) -> dict[str, Any]:
        """Load the model in torch and export it; {} (torch is used) when it cannot be."""
        from mmsearch.encoders.openclip_export import ExportUnsupported, export_towers, file_sha256

        assert self.export_dir is not None
        self._torch = self._load_torch()
        stale = _read_meta(self.export_dir)
        if stale and stale.get("checkpoint_sha256") == file_sha256(self._torch.checkpoint):
            # Same content, new path or time (copied, touched): only the identity changes.
            return _restamp(self.export_dir, stale, self._torch.checkpoint)
        shutil.rmtree(self.export_dir, ignore_errors=True)
        logger.info("Exporting OpenCLIP %s to ONNX (once per model)", self.architecture)
        try:
            meta = export_towers(self._torch, self.export_dir)
        except (ExportUnsupported, ModelUnavailableError) as exc:
            logger.warning("OpenCLIP %s runs in torch: %s", self.architecture, exc)
            return {}
        self._torch = None  # the towers are on disk now; free torch's copy of the weights
        prune_superseded(self.export_dir, meta)
        return meta

    # -- Encoder --------------------------------------------------------------------------

    @property
    def spaces(self) -> Mapping[str, int]:
        """`{"semantic": d, "visual": d}`: CLIP's one image-text space serves both."""
        return {SEMANTIC: self._dim, VISUAL: self._dim}

    def prepare_image(self, image: Image.Image) -> np.ndarray:
        """Resize and crop one image as the model's eval transform does (thread-safe).

        Returns:
            A `(3, H, W)` array: uint8 on the ONNX path (normalised in `embed_images`),
            float32 on the torch path.
        """
        if self._torch is not None:
            return self._torch.prepare_image(image)
        return self._preprocess(image)

    def embed_images(self, batch: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """`{"semantic": v, "visual": v}`: `(len(batch), dim)` float32 unit rows (one array)."""
        if self._torch is not None:
            return self._torch.embed_images(batch)
        return self._images(batch, patches=False)[0]

    def embed_images_with_regions(
        self, batch: Sequence[np.ndarray]
    ) -> tuple[dict[str, np.ndarray], list[RegionCodes | None]]:
        """`embed_images`, plus each image's patch tokens through the model's projection,
        pooled into regions for the reranker (`regions.pooled_patches`), from the same run of
        the tower; None for towers without patch tokens."""
        if self._torch is not None:
            return self._torch.embed_images_with_regions(batch)
        return self._images(batch, patches=bool(self._meta.get("patches")))

    def _images(
        self, batch: Sequence[np.ndarray], *, patches: bool
    ) -> tuple[dict[str, np.ndarray], list[RegionCodes | None]]:
        if len(batch) == 0:
            vectors = np.zeros((0, self._dim), dtype=np.float32)
            return {SEMANTIC: vectors, VISUAL: vectors}, []
        features, tokens = self._towers.images(self._preprocess.normalise(np.stack(batch)), patches)
        vectors = l2_normalise(features)
        regions: list[RegionCodes | None] = (
            list(pooled_patches(tokens)) if tokens is not None else [None] * len(batch)
        )
        return {SEMANTIC: vectors, VISUAL: vectors}, regions

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Text-tower vectors, `(len(texts), dim)` float32 unit rows; long texts are cut."""
        if self._torch is not None:
            return self._torch.embed_texts(texts)
        if len(texts) == 0:
            return np.zeros((0, self._dim), dtype=np.float32)
        return l2_normalise(
            self._towers.texts([str(t) for t in texts], self._context_length, self._meta)
        )

    def max_text_words(self) -> int:
        """Words that fit one text embedding: about 50 for CLIP's 77-token context."""
        return max(8, int((self._context_length - 2) * _WORDS_PER_TOKEN) + 1)

    joint_text_batches = True  # each run of the text tower reads its ~150 MB of weights

    def word_template(self, kind: str) -> str:
        """CLIP's own prompt for a single word matched with image regions (its zero-shot
        ImageNet prompts); bare words elsewhere."""
        return WORD_PROMPT if kind == IMAGE else "{name}"


# --------------------------------------------------------------------------------------------
# Finding the export


def export_folder(cache_root: Path, spec: ModelSpec) -> Path:
    """Where the ONNX export of `spec` lives (named from the spec, no open_clip needed)."""
    from mmsearch.encoders.onnx_cache import digest, package_version

    # The int8 mode shares the export: its 8-bit image tower is made from the full one.
    options = {k: v for k, v in spec.options.items() if k != "precision"}
    key = digest(
        {
            "spec": {"family": spec.family, "options": options},
            "open_clip": package_version("open_clip_torch"),
            "export": _EXPORT_VERSION,
        }
    )
    arch = str(spec.options.get("architecture", "model")).replace("/", "_")
    return cache_root / "open_clip" / f"{arch}-{key}"


def prune_superseded(folder: Path, meta: Mapping[str, Any]) -> list[Path]:
    """Delete the other exports of the same weights that this mmsearch will not use again
    (made by an older export version or another open_clip: their folder names differ), so an
    upgrade does not leave a second copy of the towers (~600 MB for ViT-B/32) in the cache.
    Returns the folders deleted."""
    gone = []
    for sibling in folder.parent.glob(f"{folder.name.rsplit('-', 1)[0]}-*"):
        other = _read_meta(sibling)
        if (
            sibling != folder
            and other.get("checkpoint_sha256") == meta.get("checkpoint_sha256")
            and (other.get("export_version"), other.get("open_clip"))
            != (meta.get("export_version"), meta.get("open_clip"))
        ):
            logger.info("Removing the superseded OpenCLIP export %s", sibling)
            shutil.rmtree(sibling, ignore_errors=True)
            gone.append(sibling)
    return gone


def _read_meta(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _fresh_meta(folder: Path) -> dict[str, Any]:
    """The export's metadata if it is complete and its checkpoint file looks unchanged."""
    meta = _read_meta(folder)
    recorded = meta.get("checkpoint") or {}
    try:
        st = os.stat(recorded.get("path", ""))
    except OSError:
        return {}
    if (st.st_size, st.st_mtime_ns) != (recorded.get("size"), recorded.get("mtime_ns")):
        return {}
    return meta


def _restamp(folder: Path, meta: dict[str, Any], checkpoint: str) -> dict[str, Any]:
    from mmsearch.encoders.onnx_cache import atomic_path
    from mmsearch.encoders.openclip_export import checkpoint_identity

    meta = {**meta, "checkpoint": checkpoint_identity(checkpoint)}
    with atomic_path(folder / "meta.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return meta


def _default_cache() -> Path:
    from mmsearch.config import Settings

    return Settings().model_cache()


# --------------------------------------------------------------------------------------------
# Running the towers


class _Towers:
    """The exported towers, each opened on first use (a query needs only one of them)."""

    def __init__(self, folder: Path, device: Device, *, int8: bool = False) -> None:
        self._folder = folder
        self._device = device
        self._int8 = int8
        self._lock = threading.Lock()
        self._text: Any = None
        self._image: Any = None
        self._image_prepacked = False
        self._tokenizer: Any = None

    def texts(self, texts: list[str], context: int, meta: Mapping[str, Any]) -> np.ndarray:
        with self._lock:  # one tokenizer cache; sessions open once
            if self._text is None:
                self._tokenizer = _tokenizer(self._folder, context, meta)
                if meta.get("text_runtime") == "numpy":
                    from mmsearch.encoders.clip_text_numpy import NumpyTextTower

                    self._text = NumpyTextTower(self._folder)
                else:
                    session = self._open("text.onnx")
                    self._text = lambda rows: session.run(None, {"tokens": rows})[0]
            tokens = self._tokenizer(texts)
        if meta.get("trim_tokens"):
            tokens = self._tokenizer.trim(tokens)
        return np.asarray(self._text(tokens), dtype=np.float32)

    def images(self, pixels: np.ndarray, patches: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """The image embeddings `(n, dim)` and, with `patches`, the patch tokens through the
        projection `(n, patches, dim)` (an export made with them: meta `patches`)."""
        # One example image: open fast (no weight prepacking). Batches (indexing): prepacked
        # weights run ~25 % faster, worth the extra second at load.
        batched = len(pixels) > 1
        with self._lock:
            if self._image is None or (batched and not self._image_prepacked):
                name = self._int8_tower() if self._int8 else "image.onnx"
                self._image = self._open(name, prepack=batched)
                self._image_prepacked = batched
            image = self._image
        # onnxruntime's working memory grows with the batch (ViT-B-32 at 256 px: peak 520 MB at
        # 8 images, 870 MB at 32) while images per second do not: run ingest's batches in 8s.
        outputs = ["features", "patches"] if patches else ["features"]  # openclip_export's names
        runs = [
            image.run(outputs, {"pixels": pixels[i : i + _IMAGE_CHUNK]})
            for i in range(0, len(pixels), _IMAGE_CHUNK)
        ]
        features = np.concatenate([np.asarray(run[0], dtype=np.float32) for run in runs])
        if not patches:
            return features, None
        return features, np.concatenate([np.asarray(run[1], dtype=np.float32) for run in runs])

    def _int8_tower(self) -> str:
        """The image tower with 8-bit weights (dynamic quantisation of its matrix products),
        made from the full one on first use.

        Per-channel scales with the weights kept to 7 bits (`reduce_range`): on CPUs without
        VNNI the 8-bit products saturate otherwise. Measured on 64 photos (ViT-B-32-256): cosine
        to the full tower 0.9997 (0.98 with plain 8 bits), top-10 agreement for text queries
        0.97 (0.79).
        """
        target = self._folder / "image-int8.onnx"
        if not target.is_file():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            from mmsearch.encoders.onnx_cache import atomic_path

            logger.info("Making the 8-bit image tower at %s (once)", target)
            with atomic_path(target) as tmp:
                quantize_dynamic(
                    self._folder / "image.onnx",
                    tmp,
                    weight_type=QuantType.QInt8,
                    op_types_to_quantize=["MatMul", "Gemm"],
                    per_channel=True,
                    reduce_range=True,
                )
        return target.name

    def _open(self, name: str, *, prepack: bool = False) -> Any:
        from mmsearch.encoders.onnx_cache import session

        path = self._folder / name
        try:
            return session(path, self._device, prepack=prepack)
        except Exception as exc:  # a damaged or foreign file: onnxruntime's errors vary
            raise ModelUnavailableError(
                f"The OpenCLIP export at {self._folder} cannot be opened ({exc}); delete that "
                "folder and run again to export the model anew."
            ) from exc


def _tokenizer(folder: Path, context: int, meta: Mapping[str, Any]) -> Any:
    """The export's torch-free tokenizer: CLIP's byte pairs, or a Hugging Face tokenizer."""
    entry = meta.get("tokenizer") or {"kind": "clip"}
    if entry.get("kind") == "hf":
        from mmsearch.encoders.hf_tokenizer import HfTokenizer

        return HfTokenizer(folder / str(entry["file"]), context, int(entry["pad_id"]))
    from mmsearch.encoders.clip_tokenizer import ClipTokenizer

    return ClipTokenizer(folder / "bpe_merges.txt", context)


class _Preprocess:
    """open_clip's eval transform in PIL and numpy: shorter side resized, centre crop, normalised.

    Same arithmetic as torchvision's `Resize` / `CenterCrop` on PIL images (a test compares).
    """

    def __init__(self, steps: Mapping[str, Any]) -> None:
        self._resize = steps["resize"]
        self._resample = _RESAMPLE[str(steps.get("interpolation", "bicubic"))]
        crop = steps.get("crop")
        self._crop = (int(crop[0]), int(crop[1])) if crop else None
        self._mean = np.asarray(steps["mean"], dtype=np.float32).reshape(3, 1, 1)
        self._std = np.asarray(steps["std"], dtype=np.float32).reshape(3, 1, 1)
        self.shorter_side = int(self._resize if isinstance(self._resize, int) else min(self._resize))

    def __call__(self, image: Image.Image) -> np.ndarray:
        if image.mode != "RGB":
            # Convert before resizing: palette and 16-bit images resize badly in their own mode.
            image = image.convert("RGB")
        from PIL import Image  # loaded already: `image` is one

        image = image.resize(self._resized_size(*image.size), Image.Resampling[self._resample])
        if self._crop is not None:
            image = _centre_crop(image, *self._crop)
        # Kept as 8-bit until the batch runs: ingest holds a window of prepared images, a
        # quarter of the memory this way.
        return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """8-bit `(n, 3, H, W)` pixels -> the model's float32 input (as ToTensor + Normalize)."""
        scaled = pixels.astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray((scaled - self._mean) / self._std, dtype=np.float32)

    def _resized_size(self, width: int, height: int) -> tuple[int, int]:
        if not isinstance(self._resize, int):
            return int(self._resize[1]), int(self._resize[0])
        side = self._resize
        if width <= height:
            return side, int(side * height / width)
        return int(side * width / height), side


def _centre_crop(image: Image.Image, crop_h: int, crop_w: int) -> Image.Image:
    width, height = image.size
    if crop_w > width or crop_h > height:  # torchvision pads with black first
        from PIL import Image

        padded = Image.new("RGB", (max(width, crop_w), max(height, crop_h)))
        padded.paste(image, ((max(crop_w - width, 0)) // 2, (max(crop_h - height, 0)) // 2))
        image, (width, height) = padded, padded.size
    top = round((height - crop_h) / 2.0)
    left = round((width - crop_w) / 2.0)
    return image.crop((left, top, left + crop_w, top + crop_h))
