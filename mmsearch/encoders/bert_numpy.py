"""A BERT encoder (all-MiniLM-L6-v2) in numpy, on the weights file its package ships, mapped.

For a cold text query, opening the onnxruntime session of MiniLM cost ~0.2-0.3 s (parsing the
graph and copying 90 MB of weights), more than the query's whole run in numpy (~5 ms for a
short sentence). The weights are read straight from the package's `model.safetensors`: a
safetensors file is a JSON header of tensor offsets followed by the raw little-endian arrays, so
each tensor is a view into one read-only memory map, and a query reads only the pages it
touches. Nothing is converted or cached.

It computes what `transformers.BertModel` does in eval mode (post-norm layers, exact GELU,
absolute positions, one token type), followed by sentence-transformers' masked mean pooling.
`NumpyBert.supports` refuses any config this does not cover, and `minilm` checks the result
against its onnxruntime export once per model before relying on it.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

from mmsearch.encoders.numpy_ops import blas_for, gelu, layer_norm, softmax

NUMPY_TWIN_VERSION = 1
"""Bump when the computation here changes: the once-per-model check against the export reruns."""
_DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a read-only view of one memory map."""
    with open(path, "rb") as handle:
        (header_size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_size))
    flat = np.memmap(path, dtype=np.uint8, mode="r")
    start = 8 + header_size
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        raw = flat[start + lo : start + hi]
        tensors[name] = raw.view(_DTYPES[info["dtype"]]).reshape(info["shape"])
    return tensors


class NumpyBert:
    """Token ids and attention mask `(n, length)` -> mean-pooled last hidden states `(n, hidden)`."""

    def __init__(self, model_dir: Path) -> None:
        config = json.loads((model_dir / "config.json").read_text())
        self._w = read_safetensors(model_dir / "model.safetensors")
        self._layers = int(config["num_hidden_layers"])
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config["layer_norm_eps"])
        # Checkpoints saved from BertModel have no "bert." prefix; from BertFor* they do.
        self._prefix = "bert." if "bert.embeddings.word_embeddings.weight" in self._w else ""

    @staticmethod
    def supports(model_dir: Path) -> bool:
        """Whether the model's config is one this module computes exactly."""
        try:
            config = json.loads((model_dir / "config.json").read_text())
        except (OSError, ValueError):
            return False
        return (
            config.get("model_type") == "bert"
            and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and (model_dir / "model.safetensors").is_file()
        )

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with blas_for(ids.size):
            return self._run(ids, mask)

    def _get(self, name: str) -> np.ndarray:
        return self._w[self._prefix + name]

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        # torch stores (out, in): x @ W.T, a transposed view BLAS reads without a copy.
        return x @ self._get(name + ".weight").T + self._get(name + ".bias")

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        return layer_norm(x, self._get(name + ".weight"), self._get(name + ".bias"), self._eps)

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        batch, length = ids.shape
        x = (
            self._get("embeddings.word_embeddings.weight")[ids]
            + self._get("embeddings.position_embeddings.weight")[:length]
            + self._get("embeddings.token_type_embeddings.weight")[0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        # Padding is masked with float32's lowest value, as transformers does (not -inf, so a
        # row that is all padding stays finite).
        bias = ((1.0 - mask[:, None, None, :].astype(np.float32)) * np.finfo(np.float32).min)
        for i in range(self._layers):
            p = f"encoder.layer.{i}."
            x = self._norm(self._attention(x, p + "attention.", bias) + x, p + "attention.output.LayerNorm")
            h = gelu(self._linear(x, p + "intermediate.dense"))
            x = self._norm(self._linear(h, p + "output.dense") + x, p + "output.LayerNorm")
        weights = mask[:, :, None].astype(np.float32)
        pooled = (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return np.ascontiguousarray(pooled, dtype=np.float32)

    def _attention(self, x: np.ndarray, p: str, bias: np.ndarray) -> np.ndarray:
        batch, length, width = x.shape
        head = width // self._heads

        def split(t: np.ndarray) -> np.ndarray:  # (batch, heads, length, head)
            return t.reshape(batch, length, self._heads, head).transpose(0, 2, 1, 3)

        q = split(self._linear(x, p + "self.query"))
        k = split(self._linear(x, p + "self.key"))
        v = split(self._linear(x, p + "self.value"))
        scores = softmax(q @ k.transpose(0, 1, 3, 2) * np.float32(1.0 / math.sqrt(head)) + bias)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
        return self._linear(context, p + "output.dense")

