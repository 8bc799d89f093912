"""CLIP's text transformer in numpy, on weights mapped from one file: a query needs no runtime.

For a cold text query, importing onnxruntime and opening a session cost more than the model
itself (~0.5 s against ~0.05 s for an 8-token query). CLIP's text tower is a plain pre-norm
causal transformer, so numpy runs it directly: token and position embeddings, per layer
LayerNorm -> multi-head causal self-attention -> residual -> LayerNorm -> MLP (GELU) -> residual,
a final LayerNorm, the vector at the end token, the projection. The weights sit in one float32
file mapped read-only (`text.f32` + `text.json` giving each tensor's offset and shape), so
opening costs nothing and only the pages a query touches are read; matrices are stored
transposed, ready for `x @ w`.

`write_weights` (export time, torch side) accepts only what this module runs; the export then
checks its vectors against open_clip's (cosine >= 0.9999) like any tower.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.encoders.numpy_ops import blas_for, gelu, layer_norm, softmax

WEIGHTS, LAYOUT = "text.f32", "text.json"


class NumpyTextTower:
    """Token ids `(n, length)` -> unnormalised text vectors `(n, dim)`, float32."""

    def __init__(self, folder: Path) -> None:
        layout = json.loads((folder / LAYOUT).read_text())
        flat = np.memmap(folder / WEIGHTS, dtype=np.float32, mode="r")
        self._w: dict[str, np.ndarray] = {
            name: flat[start : start + math.prod(shape)].reshape(shape)
            for name, (start, shape) in layout["tensors"].items()
        }
        self._layers = int(layout["layers"])
        self._heads = int(layout["heads"])
        self._eps = float(layout["eps"])
        self._quick_gelu = bool(layout["quick_gelu"])

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        with blas_for(tokens.size):
            return self._run(tokens)

    def _run(self, tokens: np.ndarray) -> np.ndarray:
        w = self._w
        batch, length = tokens.shape
        x = w["token_embedding"][tokens] + w["positional_embedding"][:length]
        mask = np.triu(np.full((length, length), -np.inf, dtype=np.float32), 1)
        for i in range(self._layers):
            p = f"{i}."
            x = x + self._attention(self._norm(x, p + "ln_1"), p, mask)
            h = self._norm(x, p + "ln_2") @ w[p + "c_fc.w"] + w[p + "c_fc.b"]
            x = x + self._gelu(h) @ w[p + "c_proj.w"] + w[p + "c_proj.b"]
        x = self._norm(x, "ln_final")
        pooled = x[np.arange(batch), tokens.argmax(axis=1)]
        return np.ascontiguousarray(pooled @ w["text_projection"], dtype=np.float32)

    def _attention(self, x: np.ndarray, p: str, mask: np.ndarray) -> np.ndarray:
        w = self._w
        batch, length, width = x.shape
        head = width // self._heads
        qkv = x @ w[p + "in_proj.w"] + w[p + "in_proj.b"]
        qkv = qkv.reshape(batch, length, 3, self._heads, head).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (batch, heads, length, head)
        scores = softmax((q @ k.transpose(0, 1, 3, 2)) * np.float32(1.0 / math.sqrt(head)) + mask)
        out = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
        return out @ w[p + "out_proj.w"] + w[p + "out_proj.b"]

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        return layer_norm(x, self._w[name + ".w"], self._w[name + ".b"], self._eps)

    def _gelu(self, x: np.ndarray) -> np.ndarray:
        if self._quick_gelu:
            return x / (1.0 + np.exp(-1.702 * x))
        return gelu(x)


# --------------------------------------------------------------------------------------------
# Export side


def write_weights(model: Any, folder: Path) -> bool:
    """Write `model`'s text tower for `NumpyTextTower`; False when it is not plain CLIP's."""
    import torch
    from torch import nn

    layers = list(getattr(getattr(model, "transformer", None), "resblocks", []))
    if not layers or not _plain_blocks(layers, nn):
        return False
    norms = [model.ln_final] + [n for b in layers for n in (b.ln_1, b.ln_2)]
    if len({n.eps for n in norms}) != 1 or not isinstance(model.text_projection, nn.Parameter):
        return False
    gelu = layers[0].mlp.gelu
    tensors: dict[str, np.ndarray] = {
        "token_embedding": model.token_embedding.weight,
        "positional_embedding": model.positional_embedding,
        "ln_final.w": model.ln_final.weight,
        "ln_final.b": model.ln_final.bias,
        "text_projection": model.text_projection,
    }
    for i, block in enumerate(layers):
        p = f"{i}."
        tensors |= {
            p + "ln_1.w": block.ln_1.weight, p + "ln_1.b": block.ln_1.bias,
            p + "ln_2.w": block.ln_2.weight, p + "ln_2.b": block.ln_2.bias,
            p + "in_proj.w": block.attn.in_proj_weight.T, p + "in_proj.b": block.attn.in_proj_bias,
            p + "out_proj.w": block.attn.out_proj.weight.T, p + "out_proj.b": block.attn.out_proj.bias,
            p + "c_fc.w": block.mlp.c_fc.weight.T, p + "c_fc.b": block.mlp.c_fc.bias,
            p + "c_proj.w": block.mlp.c_proj.weight.T, p + "c_proj.b": block.mlp.c_proj.bias,
        }
    layout: dict[str, Any] = {
        "layers": len(layers),
        "heads": int(layers[0].attn.num_heads),
        "eps": float(model.ln_final.eps),
        "quick_gelu": not isinstance(gelu, nn.GELU),
        "tensors": {},
    }
    offset = 0
    with open(folder / WEIGHTS, "wb") as handle:
        for name, tensor in tensors.items():
            with torch.no_grad():
                array = np.ascontiguousarray(tensor.detach().float().cpu().numpy())
            layout["tensors"][name] = (offset, list(array.shape))
            handle.write(array.tobytes())
            offset += array.size
    (folder / LAYOUT).write_text(json.dumps(layout))
    return True


def _plain_blocks(layers: list[Any], nn: Any) -> bool:
    """Every block is open_clip's pre-norm block with stock attention, no layer scale, GELU."""
    for block in layers:
        if type(block).__name__ != "ResidualAttentionBlock" or hasattr(block, "ln_1_kv"):
            return False
        if not isinstance(block.attn, nn.MultiheadAttention) or block.attn.in_proj_bias is None:
            return False
        if not (isinstance(block.ls_1, nn.Identity) and isinstance(block.ls_2, nn.Identity)):
            return False
        mlp = block.mlp
        if list(getattr(mlp, "_modules", {})) != ["c_fc", "gelu", "c_proj"]:
            return False
        act = mlp.gelu
        if not (
            (isinstance(act, nn.GELU) and act.approximate == "none")
            or type(act).__name__ == "QuickGELU"
        ):
            return False
    return True
