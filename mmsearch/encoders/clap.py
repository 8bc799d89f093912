"""The CLAP encoder family: text and sound in one space, through transformers' `ClapModel`.

Names (parsed by `registry.resolve_model`):

- `clap:ORG/NAME`, e.g. `clap:laion/clap-htsat-unfused`: a model from the Hugging Face hub. The
  Hugging Face cache is tried first with `local_files_only=True`; only when that fails *and* the
  hub answers a quick connection probe is it downloaded. Offline, loading fails at once with a
  `ModelUnavailableError` that says how to provide the model, instead of the hub client's
  minutes of retries.
- `clap:/path/to/folder`: a folder written by `ClapModel.save_pretrained` plus
  `ClapProcessor.save_pretrained` (model, feature extractor and tokenizer files side by side).

CLAP has no image tower (`images = False`): ingest skips images with a reason. Text goes into
`semantic` through the text tower; a recording is cut into 10 s windows every 5 s (the same
windows as the offline model's sounds) and each window's audio embedding, which CLAP trains to sit
in the text space, goes into both `semantic` (text queries find sounds directly, with no label
bridge, so no score calibration is needed) and `acoustic` ("more like this sound").

Relevance cut-off: `presets.json` has no `clap` preset, so `default_cutoffs` finds none and the
search's default of 0.0 applies to every space (a negative cosine is never shown). CLAP's
text-to-audio cosines are small (a good match is often only 0.2-0.4), so that is permissive but
sensible; users can raise it per query with `min_score`.

torch and transformers are imported only when an encoder is built, never at `import mmsearch`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmsearch.encoders.base import (
    ACOUSTIC,
    SEMANTIC,
    AudioEmbedding,
    AudioEncoder,
    Encoder,
    ModelSpec,
    Span,
    l2_normalise,
)
from mmsearch.encoders.device import Device, choose_device, intra_op_threads
from mmsearch.encoders.hub import hub_reachable
from mmsearch.errors import MmsearchError, ModelUnavailableError, UnknownModelError

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 10.0
"""One searchable window of a recording (CLAP's own input length), as in `offline.py`."""
WINDOW_HOP = 5.0
"""Windows overlap by half, so a sound that straddles a boundary is whole in one window."""
CONTEXT_TOKENS = 77
"""CLAP's text tower was trained on 77-token captions (its RoBERTa allows 512)."""
# RoBERTa's byte-level BPE: about 1.3-1.5 tokens per English word (77 tokens -> ~50 words).
_WORDS_PER_TOKEN = 0.65
_AUDIO_BATCH = 8
"""Windows per forward pass: bounds memory for long recordings (8 x 10 s x 48 kHz floats)."""
_TEXT_BATCH = 64


def _howto(repo_id: str) -> str:
    return (
        f"Download it once on a machine with network access (`huggingface-cli download {repo_id}`, "
        "which fills the Hugging Face cache, ~/.cache/huggingface or HF_HOME), or save it with "
        "`ClapModel.save_pretrained(DIR)` and `ClapProcessor.save_pretrained(DIR)` and use the "
        "model name 'clap:/path/to/DIR'."
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


def _set_torch_threads(torch: Any) -> None:
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return
    cores = intra_op_threads()
    if torch.get_num_threads() < cores:
        torch.set_num_threads(cores)


def _load_pretrained(source: str, *, local_only: bool) -> tuple[Any, Any]:
    """`(ClapModel, ClapProcessor)` from a folder or hub id; the processor first (cheap)."""
    from transformers import ClapModel, ClapProcessor

    processor = ClapProcessor.from_pretrained(source, local_files_only=local_only)
    model = ClapModel.from_pretrained(source, local_files_only=local_only)
    return model, processor


def _load_from_folder(folder: str) -> tuple[Any, Any]:
    path = Path(folder).expanduser()
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise ModelUnavailableError(
            f"CLAP model folder {str(path)!r} {what}. Give a folder saved with "
            "`ClapModel.save_pretrained` and `ClapProcessor.save_pretrained` as 'clap:/path/to/DIR'."
        )
    try:
        return _load_pretrained(str(path), local_only=True)
    except Exception as exc:  # missing files, foreign configs, safetensors errors vary
        raise ModelUnavailableError(
            f"Could not load a CLAP model from {str(path)!r} ({type(exc).__name__}: "
            f"{_first_line(exc)}); the folder needs the files of `ClapModel.save_pretrained` "
            "(config.json, model.safetensors) and of `ClapProcessor.save_pretrained` "
            "(preprocessor and tokenizer files)."
        ) from exc


def _load_from_hub(repo_id: str) -> tuple[Any, Any]:
    try:
        loaded = _load_pretrained(repo_id, local_only=True)
        logger.info("Using CLAP %s from the Hugging Face cache", repo_id)
        return loaded
    # OSError when not cached; anything else (a damaged cache) also means: try the hub.
    except Exception as exc:  # noqa: BLE001 - re-raised below, as the cause
        cache_error = exc
    if not hub_reachable():
        raise ModelUnavailableError(
            f"CLAP model {repo_id!r} is not in the Hugging Face cache and the hub cannot be "
            "reached (no network, or HF_HUB_OFFLINE is set). " + _howto(repo_id)
        ) from cache_error
    logger.info("Downloading CLAP %s from the Hugging Face hub", repo_id)
    try:
        return _load_pretrained(repo_id, local_only=False)
    except Exception as exc:  # the hub client raises many types (HTTP, OS, repo-not-found)
        raise ModelUnavailableError(
            f"Could not get CLAP model {repo_id!r} from the Hugging Face hub: "
            f"{_first_line(exc)}. " + _howto(repo_id)
        ) from exc


def _pooled(output: Any) -> Any:
    """The projected features: transformers 5 returns an output object, 4.x a tensor."""
    pooled = getattr(output, "pooler_output", None)
    return output if pooled is None else pooled


class ClapEncoder(Encoder):
    """A CLAP model as an mmsearch encoder: text and sound, no images (see module doc).

    Attributes:
        spec: The model spec, family `clap`, option `model` (hub id or absolute folder).
        source: The hub id or folder the weights came from.
        device: Where the model runs (fp16 on CUDA, fp32 on CPU).
    """

    images = False

    def __init__(
        self, spec: ModelSpec, *, device: str = "auto", cache_dir: Path | None = None
    ) -> None:
        """Load the model and its processor.

        Args:
            spec: Family `clap`; `options["model"]` is a hub id `ORG/NAME` or the absolute
                path of a saved model folder.
            device: `auto`, `cpu`, `cuda` or `cuda:N` (see `choose_device`).
            cache_dir: mmsearch's model cache; unused (hub models live in the Hugging Face cache).

        Raises:
            UnknownModelError: The spec names no model.
            ModelUnavailableError: The model cannot be found or loaded (the message says how to
                provide it), or the device is unavailable.
        """
        import torch

        self.spec = spec
        source = str(spec.options.get("model") or "")
        if not source:
            raise UnknownModelError(
                f"Model {spec.name!r} names no CLAP model: use 'clap:ORG/NAME' or 'clap:/path/to/DIR'."
            )
        if cache_dir is not None:
            logger.debug("cache_dir %s is not used by CLAP (Hugging Face cache is)", cache_dir)
        self.source = source
        self.device: Device = choose_device(device)
        if not self.device.is_cuda:
            _set_torch_threads(torch)
        loaded = _load_from_folder(source) if os.path.isabs(source) else _load_from_hub(source)
        model, processor = loaded
        self._dtype = torch.float16 if self.device.half else torch.float32
        self._model = model.to(self.device.torch_device, dtype=self._dtype).eval()
        self._processor = processor
        self._tokenizer = processor.tokenizer
        self._features = processor.feature_extractor
        self._lock = threading.Lock()
        config = model.config
        self._dim = int(config.projection_dim)
        limits = [CONTEXT_TOKENS, int(config.text_config.max_position_embeddings) - 2]
        model_max = getattr(self._tokenizer, "model_max_length", None)
        if isinstance(model_max, int) and 0 < model_max < 1_000_000:
            limits.append(model_max)
        self._context_length = max(4, min(limits))
        self.audio = ClapAudio(self)
        logger.info(
            "Loaded CLAP %s on %s (%s), %d-d, audio at %d Hz",
            source, self.device, "fp16" if self.device.half else "fp32", self._dim,
            self.audio.sample_rate,
        )

    @property
    def spaces(self) -> Mapping[str, int]:
        """`{"semantic": d}`: text only; sound adds `acoustic` through `audio`."""
        return {SEMANTIC: self._dim}

    def prepare_image(self, image: Image.Image) -> np.ndarray:
        raise MmsearchError(f"The model {self.spec.name} (CLAP) has no image encoder.")

    def embed_images(self, batch: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        raise MmsearchError(f"The model {self.spec.name} (CLAP) has no image encoder.")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """`(len(texts), dim)` float32 unit rows; texts past the 77-token context are truncated."""
        import torch

        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for start in range(0, len(texts), _TEXT_BATCH):
            chunk = [str(t) for t in texts[start : start + _TEXT_BATCH]]
            with self._lock:  # fast tokenizers are not safe across threads ("Already borrowed")
                tokens = self._tokenizer(
                    chunk,
                    padding=True,
                    truncation=True,
                    max_length=self._context_length,
                    return_tensors="pt",
                )
            inputs = {
                key: value.to(self.device.torch_device)
                for key, value in tokens.items()
                if key in ("input_ids", "attention_mask")
            }
            with torch.inference_mode():
                features = _pooled(self._model.get_text_features(**inputs))
            out[start : start + len(chunk)] = features.float().cpu().numpy()
        return l2_normalise(out)

    def max_text_words(self) -> int:
        """Words that fit one text embedding: about 50 for the 77-token context."""
        return max(8, int((self._context_length - 2) * _WORDS_PER_TOKEN) + 1)

    def _embed_windows(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """Unit audio embeddings of windows no longer than the feature extractor's max length."""
        import torch

        fusion = bool(getattr(self._model.config.audio_config, "enable_fusion", False))
        features = self._features(
            [np.asarray(w, dtype=np.float32) for w in windows],
            sampling_rate=self.audio.sample_rate,
            # Windows never exceed the extractor's max length, so nothing is cropped at random;
            # "fusion" stacks the mel 4 times for fused models (the fused checkpoints' input).
            truncation="fusion" if fusion else "rand_trunc",
            return_tensors="pt",
        )
        mel = features["input_features"].to(self.device.torch_device, dtype=self._dtype)
        # The extractor marks a random clip as "longer" when none is (a training trick); every
        # window fits, so none is: the same sound always gets the same vector.
        is_longer = torch.zeros((len(windows), 1), dtype=torch.bool, device=self.device.torch_device)
        with torch.inference_mode():
            pooled = _pooled(self._model.get_audio_features(input_features=mel, is_longer=is_longer))
        return l2_normalise(pooled.float().cpu().numpy())


class ClapAudio(AudioEncoder):
    """CLAP's audio tower: 10 s windows every 5 s, one vector each in `semantic` and `acoustic`."""

    def __init__(self, owner: ClapEncoder) -> None:
        self._owner = owner
        self.sample_rate = int(owner._features.sampling_rate)
        max_seconds = float(getattr(owner._features, "max_length_s", WINDOW_SECONDS) or WINDOW_SECONDS)
        # A window never exceeds what the model takes in one pass (10 s for LAION CLAP).
        self.window = round(min(WINDOW_SECONDS, max_seconds) * self.sample_rate)
        self.hop = max(1, round(WINDOW_HOP / WINDOW_SECONDS * self.window))

    @property
    def spaces(self) -> dict[str, int]:
        dim = self._owner._dim
        return {SEMANTIC: dim, ACOUSTIC: dim}

    def embed_recording(self, blocks: Iterable[np.ndarray]) -> AudioEmbedding:
        """Window the streamed blocks and embed the windows in batches.

        A window [s, s + 10 s) is embedded as soon as audio past its end has arrived; at the
        end, a recording of at most 10 s is one window covering it, and a longer one ends with a
        window aligned to its end (as `windows.WindowPooler` does). At most one window of samples
        is carried over between blocks.
        """
        rate, window, hop = self.sample_rate, self.window, self.hop
        carry = np.zeros(0, dtype=np.float32)
        carry_start = 0  # sample index of carry[0] in the recording
        next_start = 0  # start of the next window to emit
        pending: list[tuple[int, int, np.ndarray]] = []
        spans: list[Span] = []
        rows: list[np.ndarray] = []

        def flush() -> None:
            if pending:
                rows.append(self._owner._embed_windows([w for _, _, w in pending]))
                spans.extend((s / rate, e / rate) for s, e, _ in pending)
                pending.clear()

        def emit(start: int, end: int) -> None:
            pending.append((start, end, carry[start - carry_start : end - carry_start].copy()))
            if len(pending) >= _AUDIO_BATCH:
                flush()

        for block in blocks:
            block = np.asarray(block, dtype=np.float32).reshape(-1)
            if not len(block):
                continue
            carry = np.concatenate([carry, block]) if len(carry) else block
            end = carry_start + len(carry)
            while next_start + window < end:
                emit(next_start, next_start + window)
                next_start += hop
            drop = next_start - carry_start
            if drop > 0:
                carry = carry[drop:]
                carry_start = next_start
        duration = carry_start + len(carry)
        if duration == 0:
            return AudioEmbedding()
        # The last window ends with the recording (it is the only one of a short recording).
        emit(max(next_start, duration - window), duration)
        flush()
        vectors = np.concatenate(rows)
        return AudioEmbedding(
            vectors={SEMANTIC: vectors, ACOUSTIC: vectors},
            spans={SEMANTIC: list(spans), ACOUSTIC: list(spans)},
        )
