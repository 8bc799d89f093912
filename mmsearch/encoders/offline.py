"""The offline model: every weight ships inside a pip package, nothing is downloaded.

`OfflineEncoder` composes three parts, each in its own module:

- text -> `semantic`: all-MiniLM-L6-v2, mean pooled and L2-normalised, 384-d (`minilm`), or
  with `text_model = "use-multilingual-v3"` USE multilingual, 512-d (`usem`, 16 languages);
- image -> `visual`: the pooled features of an EfficientNet-Lite ImageNet classifier,
  L2-normalised (`efficientnet`);
- image -> `semantic`: the ConSE label bridge (`efficientnet.conse_mix`): the classifier's top-k
  class probabilities mix the MiniLM embeddings of "a photo of a {class name}.". The 1000 x 384
  class-name matrix is built once and cached here, beside the ONNX exports.

Both networks are converted to ONNX once and run with onnxruntime (`onnx_cache` keeps the files,
keyed by a hash of what produced them and written atomically), so a later load imports neither
torch nor transformers.

Audio (`OfflineAudio`, when the spec names an `audio_model`): YAMNet (`yamnet`) tags 0.96 s
patches with AudioSet labels and gives 1024-d embeddings; patches are pooled into overlapping
windows, whose labels are bridged into MiniLM's space like the image classes (`semantic`) and whose
embeddings answer "more like this sound" (`acoustic`). Where YAMNet hears speech, Whisper tiny.en
(`whisper`) transcribes it, and the transcript is embedded as text into `semantic`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmsearch.encoders.base import (
    ACOUSTIC,
    AUDIO_BRIDGE,
    SEMANTIC,
    VISUAL,
    AudioEmbedding,
    AudioEncoder,
    Encoder,
    ModelSpec,
    Span,
    l2_normalise,
)
from mmsearch.encoders.device import choose_device
from mmsearch.encoders.efficientnet import (
    DEFAULT_RESIZE,
    IMAGE_MODELS,
    conse_mix,
    conse_vectors,
    conse_weights,
    imagenet_class_names,
    load_runner,
    prepare_pixels,
)
from mmsearch.encoders.onnx_cache import atomic_path, digest, ensure_cache_dir, require_installed
from mmsearch.encoders.regions import LABEL_TOPK, RegionCodes
from mmsearch.encoders.usem import load_text_model, text_model_names
from mmsearch.encoders.windows import WindowPooler
from mmsearch.errors import UnknownModelError
from mmsearch.media.kinds import IMAGE

if TYPE_CHECKING:  # PIL loads with the first image: a text query never needs it
    from PIL import Image

logger = logging.getLogger(__name__)

# Bump when the cached label matrix changes meaning, to invalidate caches.
_LABELS_VERSION = 1
# Images per onnxruntime call: on 2 cores 8 runs within ~10% of 32 img/s (measured both ways)
# and needs a quarter of the memory (measured peak growth for Lite2: 0.18 GB vs 0.7 GB).
_IMAGE_CHUNK = 8
IMAGE_CODES_TOP_K = 50
IMAGE_CODES_TEMPERATURE = 4.0
IMAGE_CODES_WIDE_SHARE = 3.0
"""The whole image's broader label mix, stored with its regions for the reranker
(`RegionCodes.image_topk`): the first stage's own mix (top 10 at temperature 2) plus 3 times
the top 50 classes at temperature 4, as one list of 50 classes. Measured in the reranker's
fusion in place of the first-stage score (numpy, same fusion as the product, N = 50): flickr8k_1k
R@1 .112 -> .123, R@10 .368 -> .388; coco_mini .424 -> .470, .870 -> .897. The top 50 alone
ranked a little higher still (.125 / .393) but put the sample astronaut portrait above the
rocket launch for "a rocket launch": a broad mix alone loses a sharp single subject. As the
first stage's own vector, broader mixes lowered images' calibrated scores against sounds' in
mixed collections (coco_mini R@10 in a mixed index 0.90 -> 0.79 of images only), so the first
stage keeps the sharp mix."""


class OfflineEncoder(Encoder):
    """MiniLM text + EfficientNet-Lite images, bridged into one semantic space (see module doc).

    Args:
        spec: The model spec; options `text_model`, `image_model` (`efficientnet-lite2` or
            `efficientnet-lite0`), `bridge_template`, `bridge_top_k`, `bridge_temperature`.
        device: `auto`, `cpu`, `cuda` or `cuda:N` (see `choose_device`).
        cache_dir: Where converted models and the label matrix are kept; default the
            settings' model cache.
        image_backend: `auto` (onnxruntime unless on CUDA without its CUDA provider), `onnx`
            or `torch`.

    Raises:
        UnknownModelError: An option names a model this family does not have.
        ModelUnavailableError: A weights package or runtime is missing (the message says which
            to install), or the device cannot be used.
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        device: str = "auto",
        cache_dir: Path | None = None,
        image_backend: str = "auto",
    ) -> None:
        self.spec = spec
        options = spec.options
        text_model = str(options.get("text_model", "all-MiniLM-L6-v2"))
        image_model = str(options.get("image_model", "efficientnet-lite2"))
        if text_model not in text_model_names():
            raise UnknownModelError(
                f"Model {spec.name!r}: unknown text_model {text_model!r}; "
                f"this family has {', '.join(text_model_names())}."
            )
        if image_model not in IMAGE_MODELS:
            raise UnknownModelError(
                f"Model {spec.name!r}: unknown image_model {image_model!r}; "
                f"this family has {', '.join(IMAGE_MODELS)}."
            )
        self.template = str(options.get("bridge_template", "a photo of a {name}."))
        self.top_k = int(options.get("bridge_top_k", 10))
        self.temperature = float(options.get("bridge_temperature", 2.0))
        self.image_model = image_model
        self.device = choose_device(device)
        if cache_dir is None:
            from mmsearch.config import Settings

            cache_dir = Settings().model_cache()
        self.cache_dir = ensure_cache_dir(Path(cache_dir).expanduser())
        require_installed("onnxruntime", "onnxruntime", "The offline model")

        self._text = load_text_model(text_model, self.cache_dir, self.device)
        self.languages = self._text.languages
        info = IMAGE_MODELS[image_model]
        self.input_size = info.size
        self._visual_dim = info.features
        self._resize_mode = DEFAULT_RESIZE
        self._image, image_backend = load_runner(
            image_model, self.cache_dir, self.device, image_backend
        )
        self.image_backend = image_backend
        self.label_vectors = self._label_matrix()
        if options.get("audio_model"):
            self.audio = OfflineAudio(self, str(options["audio_model"]), options.get("speech_model"))
        logger.debug(
            "Loaded %s on %s (image backend %s, cache %s)",
            spec.name, self.device, image_backend, self.cache_dir,
        )

    def warm(self) -> None:
        """Open the text, image and audio networks now (see `Encoder.warm`)."""
        self._text.warm()
        self._image.warm()
        if self.audio is not None:
            self.audio.tagger.warm()

    # -- cache ----------------------------------------------------------------------------

    def _label_matrix(self) -> np.ndarray:
        key = digest(
            {
                "template": self.template,
                "text_model": self._text.name,
                "text_key": self._text.key,
                "classes": "imagenet-1k/torchvision",
                "version": _LABELS_VERSION,
            }
        )
        path = self.cache_dir / f"imagenet-labels-{key}.npy"

        def texts() -> list[str]:  # read only when the matrix must be built: needs torchvision
            return [self.template.format(name=name) for name in imagenet_class_names()]

        return cached_text_matrix(path, (1000, self._text.dim), texts, self._text.embed)

    # -- Encoder API ----------------------------------------------------------------------

    @property
    def spaces(self) -> dict[str, int]:
        return {SEMANTIC: self._text.dim, VISUAL: self._visual_dim}

    def prepare_image(self, image: Image.Image) -> np.ndarray:
        """Resize and TF-normalise one image into a `(3, S, S)` float32 array (thread-safe)."""
        return prepare_pixels(image, self.input_size, self._resize_mode)

    def classify(self, batch: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw network outputs for prepared images:
        `(logits (n, 1000), pooled (n, dim), region logits (n, regions, 1000))`."""
        logits, features, regions = [], [], []
        for start in range(0, len(batch), _IMAGE_CHUNK):
            chunk = np.ascontiguousarray(
                np.stack(batch[start : start + _IMAGE_CHUNK]), dtype=np.float32
            )
            out = self._image(chunk)
            logits.append(out[0])
            features.append(out[1])
            regions.append(out[2])
        return np.concatenate(logits), np.concatenate(features), np.concatenate(regions)

    def embed_images(self, batch: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """`semantic` (label bridge, 384-d) and `visual` (pooled features) for prepared images."""
        return self.embed_images_with_regions(batch)[0]

    def embed_images_with_regions(
        self, batch: Sequence[np.ndarray]
    ) -> tuple[dict[str, np.ndarray], list[RegionCodes | None]]:
        """`embed_images` plus each image's regions: per cell of the last feature map, the
        label bridge's top-k classes and weights (see `regions`)."""
        if len(batch) == 0:
            empty = {
                SEMANTIC: np.zeros((0, self._text.dim), dtype=np.float32),
                VISUAL: np.zeros((0, self._visual_dim), dtype=np.float32),
            }
            return empty, []
        logits, features, region_logits = self.classify(batch)
        semantic = conse_mix(
            logits, self.label_vectors, top_k=self.top_k, temperature=self.temperature
        )
        n, cells, classes = region_logits.shape
        ids, weights = conse_weights(
            region_logits.reshape(n * cells, classes), top_k=self.top_k,
            temperature=self.temperature,
        )
        # Scaled so each region's mix is unit length: a query then needs no norms (see
        # `region_similarities`).
        weights = _unit_mix(ids, weights, self.label_vectors)
        image_ids, image_weights = self._broad_mix(logits)
        codes: list[RegionCodes | None] = [
            RegionCodes.from_label_topk(
                ids[i * cells : (i + 1) * cells], weights[i * cells : (i + 1) * cells],
                image=(image_ids[i], image_weights[i]),
            )
            for i in range(n)
        ]
        return {SEMANTIC: semantic, VISUAL: l2_normalise(features)}, codes

    def _broad_mix(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each image's broader mix (see `IMAGE_CODES_WIDE_SHARE`): `(ids (n, 50), weights)`,
        the weights scaled so that the mix is a unit vector, like a region's."""
        ids, wide = conse_weights(
            logits, top_k=IMAGE_CODES_TOP_K, temperature=IMAGE_CODES_TEMPERATURE
        )
        # The first stage's top k are the top k of these 50: mix them over the same ids.
        picked = np.take_along_axis(np.asarray(logits, np.float64), ids, axis=1)
        places, sharp = conse_weights(picked, top_k=self.top_k, temperature=self.temperature)
        narrow = np.zeros_like(wide)
        np.put_along_axis(narrow, places, sharp, axis=1)
        both = _unit_mix(ids, narrow, self.label_vectors) + IMAGE_CODES_WIDE_SHARE * _unit_mix(
            ids, wide, self.label_vectors
        )
        return ids, _unit_mix(ids, both, self.label_vectors)

    def region_vectors(self, codes: RegionCodes) -> np.ndarray | None:
        """The stored regions mixed back into `semantic` vectors (see `regions`)."""
        if codes.format != LABEL_TOPK:
            return None
        ids, weights = codes.label_topk()
        if ids.size and ids.max() >= len(self.label_vectors):
            return None
        return conse_vectors(ids, weights, self.label_vectors)

    def pooled_regions(self, regions: Sequence[RegionCodes]) -> np.ndarray | None:
        """`Encoder.pooled_regions`: a region's stored weights already make its mix a unit
        vector, so the mean of an image's regions is the mix of all its cells' labels by their
        weights over the number of cells: one weight per label and image, then one product
        with the label matrix for all images."""
        labels = len(self.label_vectors)
        mixes = np.zeros((len(regions), labels), np.float32)
        for row, codes in enumerate(regions):
            if codes.format != LABEL_TOPK or codes.count == 0:
                continue
            ids, weights = codes.label_topk()
            if ids.max() >= labels:
                continue
            mixes[row] = np.bincount(ids.ravel(), weights.ravel(), minlength=labels) / codes.count
        pooled = mixes @ self.label_vectors
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.divide(pooled, norms, out=np.zeros_like(pooled), where=norms > 1e-6)

    def region_similarities(
        self, regions: Sequence[RegionCodes], texts: np.ndarray
    ) -> list[np.ndarray | None]:
        """`Encoder.region_similarities` without mixing 384-d region vectors: stored weights
        are scaled so that `sum_k w_k L_k` is a unit vector (see `embed_images_with_regions`),
        so a region's cosine with a text t is `sum_k w_k (t . L_k)`, with `t . L` computed once
        per query for the 1000 labels."""
        readable = [c.format == LABEL_TOPK and c.count > 0 for c in regions]
        if not any(readable):
            return [None] * len(regions)
        decoded = [c.label_topk() for c, ok in zip(regions, readable) if ok]
        ids = np.concatenate([i for i, _ in decoded])
        weights = np.concatenate([w for _, w in decoded])
        if ids.max() >= len(self.label_vectors):
            return [None] * len(regions)
        text_label = np.asarray(texts, np.float32) @ self.label_vectors.T  # (texts, labels)
        cosines = (text_label[:, ids] * weights).sum(axis=2)  # (texts, regions)
        out: list[np.ndarray | None] = []
        start = 0
        for ok, codes in zip(readable, regions):
            if ok:
                out.append(cosines[:, start : start + codes.count])
                start += codes.count
            else:
                out.append(None)
        return out

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """The text model's unit rows, `(n, 384)` for MiniLM (truncated beyond 256 tokens) or
        `(n, 512)` for USE multilingual."""
        return self._text.embed(texts)

    def word_template(self, kind: str) -> str:
        """Image regions mix label texts written in the bridge's template, so query words are
        written in it too; bare words elsewhere."""
        return self.template if kind == IMAGE else "{name}"

    def max_text_words(self) -> int:
        # 256 word pieces minus [CLS]/[SEP]; English prose averages ~1.3 pieces per word.
        return 180


def cached_text_matrix(
    path: Path,
    shape: tuple[int, int],
    texts: Callable[[], list[str]],
    embed: Callable[[Sequence[str]], np.ndarray],
) -> np.ndarray:
    """The text embeddings of a label set (a label bridge's matrix), built once and kept in
    `path`, whose name carries a key of everything that made it; a file of the wrong shape or
    an unreadable one is built again."""
    if path.is_file():
        try:
            matrix = np.load(path, allow_pickle=False)
            if matrix.shape == shape and matrix.dtype == np.float32:
                return matrix
            logger.warning("Cached label matrix %s has shape %s; rebuilding", path, matrix.shape)
        except (OSError, ValueError) as exc:
            logger.warning("Cached label matrix %s is unreadable (%s); rebuilding", path, exc)
    logger.info("Embedding %d label names into %s (once)", shape[0], path)
    matrix = embed(texts())
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, matrix, allow_pickle=False)
    return matrix


def _unit_mix(ids: np.ndarray, weights: np.ndarray, label_vectors: np.ndarray) -> np.ndarray:
    """`weights (n, k)` scaled so that each row's mix of `label_vectors[ids]` is unit length."""
    mixed = np.einsum("rk,rkd->rd", weights, label_vectors[ids])
    return weights / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-6)


# --------------------------------------------------------------------------------------------
# Audio

WINDOW_SECONDS = 10.0
"""Length of one searchable window of a recording: a hit says which window matched."""
WINDOW_HOP = 5.0
"""Windows overlap by half, so a sound that straddles a boundary is whole in one window."""
SPEECH_THRESHOLD = 0.5
"""YAMNet's speech score above which a stretch is worth transcribing (Whisper is ~20x slower)."""
SPEECH_MIN_FRAMES = 3
_TRANSCRIPT_CHUNK_WORDS = 60
_AUDIO_LABELS_VERSION = 1


class OfflineAudio(AudioEncoder):
    """YAMNet windows bridged into MiniLM's space, its embeddings, and Whisper transcripts."""

    def __init__(self, owner: OfflineEncoder, audio_model: str, speech_model: object) -> None:
        from mmsearch.encoders import yamnet, yamnet_frontend

        if audio_model != "yamnet":
            raise UnknownModelError(
                f"Model {owner.spec.name!r}: unknown audio_model {audio_model!r}; this family has yamnet."
            )
        self._owner = owner
        self._yamnet = yamnet
        self.tagger = yamnet.YamnetTagger(owner.cache_dir)
        self.sample_rate = yamnet_frontend.SAMPLE_RATE
        self.label_vectors = self._label_matrix()
        self._speech_model = str(speech_model) if speech_model else None
        self._transcriber: object | None = None

    def _label_matrix(self) -> np.ndarray:
        texts = self._yamnet.label_texts(self.tagger.labels)
        key = digest(
            {"texts": texts, "text_key": self._owner._text.key, "version": _AUDIO_LABELS_VERSION}
        )
        path = self._owner.cache_dir / f"audioset-labels-{key}.npy"
        shape = (len(texts), self._owner._text.dim)
        return cached_text_matrix(path, shape, lambda: texts, self._owner.embed_texts)

    @property
    def spaces(self) -> dict[str, int]:
        return {SEMANTIC: self._owner._text.dim, ACOUSTIC: self._yamnet.EMBEDDING_DIM}

    def _transcribe(self, waveform: np.ndarray, offset: float) -> list[tuple[float, float, str]]:
        if self._speech_model is None:
            return []
        if self._transcriber is None:
            from mmsearch.encoders.whisper import Transcriber

            self._transcriber = Transcriber(device=self._owner.device.torch_device)
        segments = self._transcriber.transcribe(waveform, offset)  # type: ignore[attr-defined]
        # Whisper pads to its 30 s window and may place an end past the block's last sample.
        last = offset + len(waveform) / self.sample_rate
        return [(min(s.start, last), min(s.end, last), s.text) for s in segments]

    def embed_recording(self, blocks: Iterable[np.ndarray]) -> AudioEmbedding:
        yamnet = self._yamnet
        pooler = WindowPooler(WINDOW_SECONDS, WINDOW_HOP, yamnet.FRAME_LENGTH)
        spans: list[Span] = []
        semantic: list[np.ndarray] = []
        acoustic: list[np.ndarray] = []
        strongest = np.zeros((0, yamnet.NUM_CLASSES), np.float32)  # per label, its top frames
        transcript: list[tuple[float, float, str]] = []
        offset = 0.0

        def take(windows: list[tuple[Span, list[np.ndarray]]]) -> None:
            for span, (scores, embeddings) in windows:
                spans.append(span)
                semantic.append(yamnet.bridge_weights(scores) @ self.label_vectors)
                acoustic.append(embeddings.mean(axis=0))

        for block in blocks:
            # Each block is tagged on its own: a patch straddling two blocks is lost (at most
            # 0.5 s per 30 s block), which keeps the block at hand for the transcriber below.
            frames = self.tagger.frames(block)
            if len(frames):
                take(pooler.push(frames.start + offset, frames.scores, frames.embeddings))
                keep = min(yamnet.BRIDGE_POOL_FRAMES, len(strongest) + len(frames))
                strongest = np.sort(np.concatenate([strongest, frames.scores]), axis=0)[-keep:]
                speech = yamnet.speech_score(frames.scores, self.tagger.labels)
                if is_speech(speech):
                    transcript += self._transcribe(block, offset)
            offset += len(block) / self.sample_rate
        take(pooler.finish(offset))
        if not spans:
            return AudioEmbedding()
        vectors = {SEMANTIC: l2_normalise(np.asarray(semantic)), ACOUSTIC: l2_normalise(np.asarray(acoustic))}
        semantic_spans = list(spans)
        sources: list[str | None] = [AUDIO_BRIDGE] * len(spans)
        chunks = transcript_chunks(transcript)
        if chunks:
            said = self._owner.embed_texts([text for _, _, text in chunks])
            vectors[SEMANTIC] = np.concatenate([vectors[SEMANTIC], said])
            semantic_spans += [(start, end) for start, end, _ in chunks]
            sources += [None] * len(chunks)  # transcripts are text: the text scale
        return AudioEmbedding(
            vectors=vectors,
            spans={SEMANTIC: semantic_spans, ACOUSTIC: list(spans)},
            sources={SEMANTIC: sources},
            tags=tag_list(strongest.mean(axis=0), self.tagger.labels, yamnet.BRIDGE_EXCLUDED),
            transcript=transcript,
        )


def is_speech(scores: np.ndarray) -> bool:
    """Whether a block is worth transcribing: YAMNet hears speech in at least ~1.5 s of it
    (3 frames), or in half of a shorter clip. A single speech-like frame is usually a laugh, a
    sneeze or a cry: transcribing those cost half the indexing time on ESC-50 and kept nothing."""
    frames = int((scores > SPEECH_THRESHOLD).sum())
    return frames >= min(SPEECH_MIN_FRAMES, max(1, -(-len(scores) // 2)))


def tag_list(
    scores: np.ndarray,
    labels: Sequence[str],
    unhelpful: Sequence[str] = (),
    top: int = 5,
    floor: float = 0.1,
) -> list[tuple[str, float]]:
    """The strongest labels of a recording, best first; `unhelpful` ones ("Silence") only when
    nothing else reaches `floor`, so a recording always has at least one tag."""
    order = [int(i) for i in np.argsort(-scores)]
    tags = [(labels[i], round(float(scores[i]), 4)) for i in order if scores[i] >= floor]
    useful = [tag for tag in tags if tag[0] not in unhelpful][:top]
    return useful or tags[:1] or [(labels[order[0]], round(float(scores[order[0]]), 4))]


def transcript_chunks(segments: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Consecutive transcript segments joined into chunks of about a paragraph, for embedding."""
    chunks: list[tuple[float, float, str]] = []
    for start, end, text in segments:
        if chunks and len(chunks[-1][2].split()) + len(text.split()) <= _TRANSCRIPT_CHUNK_WORDS:
            first, _, joined = chunks[-1]
            chunks[-1] = (first, end, f"{joined} {text}")
        else:
            chunks.append((start, end, text))
    return chunks
