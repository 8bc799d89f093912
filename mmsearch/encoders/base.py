"""The contract every encoder keeps, and the model spec stored in an index's manifest."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.encoders.regions import PATCH_INT8, RegionCodes

if TYPE_CHECKING:  # PIL loads with the image decoders: a text query never needs it
    from PIL import Image

SEMANTIC = "semantic"
"""Images and text documents mapped into the text encoder's space; answers text queries."""
VISUAL = "visual"
"""Image appearance vectors; answers "more like this image"."""
ACOUSTIC = "acoustic"
"""Audio appearance vectors; answers "more like this sound"."""

AUDIO_BRIDGE = "audio-bridge"
"""Source of `semantic` vectors that mix sound-label texts (their cosines run on another scale)."""

VIDEO_FRAME = "frame"
"""Source of `semantic` rows made from a video's keyframe: scored on the image scale (see
`query/calibration.scale_key`), unlike the soundtrack's and the transcript's rows."""

VIDEO_SOUND = "video-sound"
"""Source of `semantic` rows a video's soundtrack made through the sound-label bridge. Its own
scale: most queries of a video collection are about what is seen, and a soundtrack's label
bridge met them as readily as a sound query (see ARCHITECTURE.md, Video)."""

Span = tuple[float, float]
"""(start, end) in seconds within a recording."""


@dataclass
class AudioEmbedding:
    """What an audio encoder makes of one recording.

    `vectors[space]` holds one row per window (or transcript chunk) and `spans[space]` the time
    range each row covers, so a hit can say where in a long recording it matched.
    """

    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    spans: dict[str, list[Span]] = field(default_factory=dict)
    sources: dict[str, list[str | None]] = field(default_factory=dict)
    """Per space and row, what made it when its cosines are on their own scale (a label bridge:
    `AUDIO_BRIDGE`), else None; the preset's `calibration` maps such scores onto the common one."""
    tags: list[tuple[str, float]] = field(default_factory=list)
    """The recording's strongest sound labels with their scores, best first."""
    transcript: list[tuple[float, float, str]] = field(default_factory=list)
    """What is said: (start, end, text) segments."""


class AudioEncoder(ABC):
    """Turns recordings into vectors: mono float32 blocks at `sample_rate` in, windows out.

    Recordings arrive as consecutive blocks so hour-long files never sit in memory whole.
    """

    sample_rate: int = 16_000

    @property
    @abstractmethod
    def spaces(self) -> Mapping[str, int]:
        """Space name -> dimension of what audio fills, e.g. `{"semantic": 384, "acoustic": 1024}`."""

    @abstractmethod
    def embed_recording(self, blocks: Iterable[np.ndarray]) -> AudioEmbedding:
        """Vectors, tags and transcript of one recording given as consecutive blocks."""

    def example_vectors(self, embedding: AudioEmbedding) -> dict[str, np.ndarray]:
        """One query vector per space for a recording used as an example ("more like this")."""
        return {
            space: l2_normalise(rows.mean(axis=0))
            for space, rows in embedding.vectors.items()
            if space == ACOUSTIC and len(rows)
        }


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model preset: what the manifest records and what `load_encoder` builds.

    `name` is what the user typed (e.g. `offline-default`, `open_clip:ViT-B-32@/ckpt.pt`);
    `family` picks the implementation module; `options` are that family's settings.
    """

    name: str
    family: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "options": dict(self.options)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelSpec:
        return cls(name=data["name"], family=data["family"], options=dict(data.get("options", {})))

    def identity(self) -> dict[str, Any]:
        """What must match for two specs to produce comparable vectors."""
        return {"family": self.family, "options": dict(self.options)}


class Encoder(ABC):
    """Turns images and text into L2-normalised float32 vectors, one set per space.

    The ingest pipeline calls `prepare_image` from several reader threads (it must not touch
    the model and must be thread-safe), then `embed_images` on whole batches from one thread.
    """

    spec: ModelSpec
    audio: AudioEncoder | None = None
    """The model's audio side; None when it cannot index sound."""
    images: bool = True
    """False for a model without an image tower (CLAP): images are then skipped with a reason,
    and `prepare_image`/`embed_images` are never called."""
    input_size: int | None = None
    """Shorter image side the model needs, so large JPEGs can be decoded already reduced."""
    languages: tuple[str, ...] | None = None
    """ISO 639-1 codes of the languages its text tower understands; None when not known (CLAP,
    OpenCLIP towers whose tokenizer `openclip_spec.text_languages` does not list), and then no
    query is refused for its language. An OpenCLIP checkpoint of the user's own is taken to read
    what its architecture reads."""
    joint_text_batches: bool = False
    """True when one `embed_texts` call on several lists of texts costs clearly less than a
    call each (a tower whose run reads all its weights once per call), with the same vectors
    but for float rounding: a text search then embeds its query and the reranker's words in
    one batch (`Searcher`). False keeps a call each (MiniLM's first small batches run in numpy
    only under a token budget a joint batch could exceed)."""

    @property
    @abstractmethod
    def spaces(self) -> Mapping[str, int]:
        """Space name -> dimension, e.g. `{"semantic": 384, "visual": 1280}`."""

    @abstractmethod
    def prepare_image(self, image: Image.Image) -> np.ndarray:
        """Resize and normalise one RGB image into the model's input array (thread-safe)."""

    @abstractmethod
    def embed_images(self, batch: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Vectors for prepared images: `{space: (len(batch), dim) float32}`, rows unit-length.

        Returns every image space the model fills (at least `semantic` and `visual`).
        """

    def embed_images_with_regions(
        self, batch: Sequence[np.ndarray]
    ) -> tuple[dict[str, np.ndarray], list[RegionCodes | None]]:
        """`embed_images`, plus what each region of each image shows (for the reranker), from
        the same pass through the network. Models without region outputs give None."""
        return self.embed_images(batch), [None] * len(batch)

    def region_vectors(self, codes: RegionCodes) -> np.ndarray | None:
        """Unit vectors `(regions, dim)` in `semantic` for stored regions, or None when this
        model cannot read that format (the reranker then leaves the item as it ranked).
        Records of vectors (`PATCH_INT8`) read as they are: the model that stored them made
        them in its own `semantic` space."""
        if codes.format == PATCH_INT8 and codes.count > 0:
            return codes.vectors()
        return None

    def pooled_regions(self, regions: Sequence[RegionCodes]) -> np.ndarray | None:
        """Per image, the mean of its region vectors as a unit vector `(n, dim)` in `semantic`
        (a zero row for an image whose regions this model does not pool), or None when the
        model pools none. The reranker searches every image's pooled regions for images the
        first stage missed (`query/rerank.py`, `PooledRegions`); only the offline label bridge
        does, where it was measured (OpenCLIP's own image vector is its first stage)."""
        return None

    def word_template(self, kind: str) -> str:
        """How a single query word is written before the text tower embeds it, to be matched
        with the regions of an item of `kind` (see `query/rerank.py`): `{name}` is the word."""
        return "{name}"

    def region_similarities(
        self, regions: Sequence[RegionCodes], texts: np.ndarray
    ) -> list[np.ndarray | None]:
        """Per image, the cosines `(texts, regions)` of unit text vectors `(n, dim)` with its
        regions; None for an image whose regions this model cannot read. Models may compute it
        without building the region vectors (see `OfflineEncoder`)."""
        out: list[np.ndarray | None] = []
        for codes in regions:
            vectors = self.region_vectors(codes)
            out.append(None if vectors is None or len(vectors) == 0 else texts @ vectors.T)
        return out

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Semantic-space vectors for texts (queries or document chunks), `(n, dim)`, unit rows."""

    def text_spaces(self) -> dict[str, Callable[[Sequence[str]], np.ndarray]]:
        """Text space -> how to embed a query into it. One for most models; a composite of two
        families with text towers of their own has two, searched and fused."""
        return {SEMANTIC: self.embed_texts}

    def all_spaces(self) -> dict[str, int]:
        """Every space the model fills, images and text plus audio when it has an audio side."""
        spaces = dict(self.spaces)
        if self.audio is not None:
            for space, dim in self.audio.spaces.items():
                if spaces.setdefault(space, dim) != dim:
                    raise ValueError(f"audio and image encoders disagree on the {space} dimension")
        return spaces

    def warm(self) -> None:
        """Open every network now rather than on first use. A one-shot search opens only what it
        runs; a long-running shell (the TUI, the HTTP service) calls this while it starts, so a
        broken model file is reported then and no query waits for a model to open."""

    def max_text_words(self) -> int:
        """How many words of a document fit one text embedding (documents are chunked to this)."""
        return 180


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32; zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
