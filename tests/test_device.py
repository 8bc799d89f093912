"""Device choice: CPU/CUDA, fp16 and onnxruntime providers, testable without a GPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mmsearch.encoders.device import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    Device,
    choose_device,
    intra_op_threads,
)
from mmsearch.errors import ModelUnavailableError


def yes() -> bool:
    return True


def no() -> bool:
    return False


def ort_with_cuda() -> list[str]:
    return [CUDA_PROVIDER, CPU_PROVIDER]


def ort_cpu_only() -> list[str]:
    return [CPU_PROVIDER]


def test_cpu_when_asked_even_if_cuda_exists() -> None:
    device = choose_device("cpu", cuda_available=yes, onnx_providers_available=ort_with_cuda)
    assert device == Device(kind="cpu")
    assert device.torch_device == "cpu"
    assert device.half is False
    assert device.onnx_providers == [CPU_PROVIDER]
    assert not device.is_cuda


def test_auto_without_cuda_is_cpu_fp32() -> None:
    device = choose_device("auto", cuda_available=no)
    assert device.kind == "cpu"
    assert device.half is False
    assert device.onnx_providers == [CPU_PROVIDER]


def test_auto_with_cuda_is_cuda_fp16() -> None:
    device = choose_device("auto", cuda_available=yes, onnx_providers_available=ort_with_cuda)
    assert device.kind == "cuda"
    assert device.index == 0
    assert device.torch_device == "cuda:0"
    assert device.half is True
    assert device.onnx_providers == [CUDA_PROVIDER, CPU_PROVIDER]
    assert device.onnx_provider_options() == [{"device_id": "0"}, {}]


def test_cuda_without_onnxruntime_gpu_keeps_cpu_provider_only() -> None:
    device = choose_device("cuda", cuda_available=yes, onnx_providers_available=ort_cpu_only)
    assert device.kind == "cuda"
    assert device.half is True
    assert device.onnx_providers == [CPU_PROVIDER]


def test_explicit_cuda_index() -> None:
    device = choose_device("CUDA:1", cuda_available=yes, onnx_providers_available=ort_with_cuda)
    assert (device.kind, device.index, device.torch_device) == ("cuda", 1, "cuda:1")
    assert device.onnx_provider_options()[0] == {"device_id": "1"}
    assert str(device) == "cuda:1"


@pytest.mark.parametrize("preference", ["cuda", "cuda:0", "cuda:2"])
def test_explicit_cuda_when_unavailable_raises(preference: str) -> None:
    with pytest.raises(ModelUnavailableError, match="CUDA is not available"):
        choose_device(preference, cuda_available=no)


@pytest.mark.parametrize("preference", ["tpu", "cuda:x", "gpu0", "cuda:-1"])
def test_unknown_device_names_raise(preference: str) -> None:
    with pytest.raises(ModelUnavailableError, match="Unknown device"):
        choose_device(preference, cuda_available=yes)


def test_default_probe_runs_on_this_machine() -> None:
    device = choose_device()
    assert device.kind in ("cpu", "cuda")
    assert device.onnx_providers[-1] == CPU_PROVIDER


def test_device_is_frozen_and_hashable() -> None:
    device = choose_device("cpu")
    with pytest.raises(AttributeError):
        device.kind = "cuda"  # type: ignore[misc]
    assert len({device, choose_device("cpu")}) == 1


def test_intra_op_threads_uses_every_available_core() -> None:
    threads = intra_op_threads()
    assert 1 <= threads <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert threads == len(os.sched_getaffinity(0))


def test_importing_device_module_does_not_import_torch() -> None:
    probe = (
        "import sys\nimport mmsearch.encoders.device as d\n"
        "d.choose_device('cpu')\nd.intra_op_threads()\n"
        "print('torch' in sys.modules, 'onnxruntime' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
