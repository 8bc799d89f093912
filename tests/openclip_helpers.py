"""Helpers for tests that need a real OpenCLIP architecture without pretrained weights.

No pretrained CLIP can be downloaded on the test machines, so tests build an
architecture-true model with random weights and save it where `open_clip:ARCH@/path` finds it.
"""

from __future__ import annotations

from pathlib import Path

# The smallest built-in open_clip config: a ViT-S/32 image tower (22.6M parameters) with a
# 10-layer, 256-wide text tower; 43M parameters in all (ViT-B-32 has 151M), 256-d embeddings.
# It is a plain `CLIP` (no timm, no Hugging Face tokenizer), the same code path as ViT-B-32.
SMALL_ARCH = "ViT-S-32-alt"
SMALL_ARCH_DIM = 256


def make_random_checkpoint(arch: str, path: str | Path, *, seed: int = 0) -> str:
    """Save a randomly initialised OpenCLIP `arch` as a checkpoint open_clip can load.

    The file is a plain `state_dict` saved with `torch.save`, which `open_clip.load_checkpoint`
    (used for `pretrained=/path/to/file`) accepts as is.

    Args:
        arch: An `open_clip.list_models()` name.
        path: Where to write the checkpoint (parent folders are created).
        seed: Seeds torch so the weights are the same on every run.

    Returns:
        The checkpoint's absolute path, as a string.
    """
    import open_clip
    import torch

    path = Path(path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    # pretrained_text=False: a Hugging Face text tower (xlm-roberta-...) is built from its config
    # alone, not from the hub's pretrained weights.
    model = open_clip.create_model(arch, pretrained=None, pretrained_text=False)
    torch.save(model.state_dict(), path)
    return str(path)


def shared_checkpoint(tmp_path_factory) -> str:
    """One small random checkpoint per test session, at one path, so every OpenCLIP test file
    reuses one ONNX export (an export takes about a minute)."""
    path = tmp_path_factory.getbasetemp() / "openclip-shared" / "ckpt.pt"
    if path.is_file():
        return str(path.resolve())
    return make_random_checkpoint(SMALL_ARCH, path)


def shared_model_cache(tmp_path_factory) -> str:
    """The model cache OpenCLIP tests export into: per session, never the user's cache."""
    path = tmp_path_factory.getbasetemp() / "openclip-shared" / "models"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)
