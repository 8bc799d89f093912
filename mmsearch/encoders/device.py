"""Compute-device choice: the one place that decides CPU vs CUDA, fp16, ONNX providers and threads.

Every encoder asks `choose_device` instead of probing torch or onnxruntime itself, so a user's
`device` setting (`auto`, `cpu`, `cuda`, `cuda:N`) means the same thing for every model. This
module is imported widely, so torch and onnxruntime are imported only inside the functions that
need them.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from mmsearch.errors import ModelUnavailableError

logger = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


@dataclass(frozen=True)
class Device:
    """Where and how a model runs.

    Attributes:
        kind: `"cpu"` or `"cuda"`.
        index: CUDA device ordinal (0 on CPU).
        torch_device: What `torch.device(...)` takes, e.g. `"cpu"` or `"cuda:0"`.
        half: Whether to run in fp16 (on CUDA only; CPU stays fp32).
        onnx_providers: onnxruntime execution providers in priority order.
    """

    kind: str
    index: int = 0
    torch_device: str = "cpu"
    half: bool = False
    # A list (what onnxruntime takes), left out of the hash so the frozen Device stays hashable.
    onnx_providers: list[str] = field(default_factory=lambda: [CPU_PROVIDER], hash=False)

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    def onnx_provider_options(self) -> list[dict[str, str]]:
        """Per-provider options matching `onnx_providers` (pins CUDA to `index`)."""
        return [
            {"device_id": str(self.index)} if name == CUDA_PROVIDER else {}
            for name in self.onnx_providers
        ]

    def __str__(self) -> str:
        return self.torch_device


# Device nodes a GPU driver creates on Linux: NVIDIA, WSL2's GPU bridge, AMD ROCm (which torch
# also reports as "cuda"). Without any of them torch cannot see a GPU, so we skip importing it.
_LINUX_GPU_NODES = ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/dxg", "/dev/kfd")


def _gpu_driver_absent() -> bool:
    """True only when we are sure no GPU driver exists (saves seconds of `import torch`)."""
    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return False
    return not any(os.path.exists(node) for node in _LINUX_GPU_NODES)


def _torch_cuda_available() -> bool:
    if _gpu_driver_absent():
        return False
    try:
        import torch
    except ImportError:
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver install must not stop CPU use
        logger.debug("torch.cuda.is_available() failed", exc_info=True)
        return False


def _torch_cuda_count() -> int | None:
    try:
        import torch

        return int(torch.cuda.device_count())
    except Exception:
        return None


def _onnx_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def _parse(preference: str) -> tuple[str, int | None]:
    text = (preference or "auto").strip().lower()
    if text in ("auto", "cpu", "cuda"):
        return text, None
    if text.startswith("cuda:"):
        ordinal = text.partition(":")[2]
        if ordinal.isdigit():
            return "cuda", int(ordinal)
    raise ModelUnavailableError(
        f"Unknown device {preference!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'."
    )


def choose_device(
    preference: str = "auto",
    *,
    cuda_available: Callable[[], bool] | None = None,
    onnx_providers_available: Callable[[], list[str]] | None = None,
) -> Device:
    """Resolve a device setting into a `Device`.

    Args:
        preference: `"auto"` (CUDA when torch sees a GPU, else CPU), `"cpu"`, `"cuda"` or
            `"cuda:N"`.
        cuda_available: Replaces `torch.cuda.is_available` (tests inject it to run on CPU).
        onnx_providers_available: Replaces `onnxruntime.get_available_providers` (tests).

    Returns:
        The device to use. On CUDA, `half` is True and `onnx_providers` starts with
        `CUDAExecutionProvider` only if onnxruntime offers it (the `onnxruntime-gpu` package).

    Raises:
        ModelUnavailableError: CUDA was asked for explicitly but is not available, or the
            setting is not one of the forms above.
    """
    kind, index = _parse(preference)
    probe = cuda_available or _torch_cuda_available
    if kind == "cpu":
        return Device(kind="cpu")
    has_cuda = probe()
    if kind == "auto" and not has_cuda:
        return Device(kind="cpu")
    if not has_cuda:
        raise ModelUnavailableError(
            f"Device {preference!r} was requested but CUDA is not available (no GPU, or torch "
            "was installed without CUDA support). Use --device cpu or auto."
        )
    index = index or 0
    if cuda_available is None:  # only a real torch can count devices
        count = _torch_cuda_count()
        if count is not None and index >= count:
            raise ModelUnavailableError(
                f"Device 'cuda:{index}' was requested but only {count} CUDA device(s) exist."
            )
    offered = (onnx_providers_available or _onnx_providers)()
    providers = [CUDA_PROVIDER, CPU_PROVIDER] if CUDA_PROVIDER in offered else [CPU_PROVIDER]
    if CUDA_PROVIDER not in offered:
        logger.info("onnxruntime has no CUDA provider (install onnxruntime-gpu for it)")
    return Device(
        kind="cuda",
        index=index,
        torch_device=f"cuda:{index}",
        half=True,
        onnx_providers=providers,
    )


def intra_op_threads() -> int:
    """Threads one model call should use: every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)
