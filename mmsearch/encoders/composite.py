"""A model put together from several families, one per modality: `open_clip:ARCH/TAG+clap:NAME`
takes images and text from OpenCLIP and sound from CLAP.

Images come from the first part that has an image tower, sound from the last part that has an
audio side (a later part is named for what it adds). The first part's text tower fills
`semantic` (documents, and text queries against images). A sound part with a text tower of its
own keeps its text space apart, as `semantic-audio`: its sound vectors live there, and a text
query is embedded by both towers, the two spaces searched and their lists fused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from mmsearch.encoders.base import (
    SEMANTIC,
    AudioEmbedding,
    AudioEncoder,
    Encoder,
    ModelSpec,
)
from mmsearch.encoders.regions import RegionCodes
from mmsearch.errors import MmsearchError

AUDIO_TEXT = "semantic-audio"
"""The sound part's own text space, when it is not the first part's."""


class _RenamedAudio(AudioEncoder):
    """An audio side whose `semantic` vectors belong to another text space than the model's."""

    def __init__(self, inner: AudioEncoder, renames: Mapping[str, str]) -> None:
        self._inner = inner
        self._renames = dict(renames)
        self.sample_rate = inner.sample_rate

    @property
    def spaces(self) -> dict[str, int]:
        return {self._renames.get(s, s): d for s, d in self._inner.spaces.items()}

    def embed_recording(self, blocks: Iterable[np.ndarray]) -> AudioEmbedding:
        got = self._inner.embed_recording(blocks)
        rename = self._renames.get
        return AudioEmbedding(
            vectors={rename(s, s): v for s, v in got.vectors.items()},
            spans={rename(s, s): v for s, v in got.spans.items()},
            sources={rename(s, s): v for s, v in got.sources.items()},
            tags=got.tags,
            transcript=got.transcript,
        )

    def example_vectors(self, embedding: AudioEmbedding) -> dict[str, np.ndarray]:
        return self._inner.example_vectors(embedding)


class CompositeEncoder(Encoder):
    """The parts of `spec.options["parts"]` (model specs), each loaded by its own family."""

    def __init__(
        self, spec: ModelSpec, *, device: str = "auto", cache_dir: Path | None = None
    ) -> None:
        from mmsearch.encoders.registry import load_encoder

        self.spec = spec
        parts = [
            load_encoder(ModelSpec.from_json(part), device=device, cache_dir=cache_dir)
            for part in spec.options["parts"]
        ]
        self._text = parts[0]
        self.languages = self._text.languages
        self._vision = next((p for p in parts if p.images), None)
        self.images = self._vision is not None
        self.input_size = self._vision.input_size if self._vision else None
        sound = next((p for p in reversed(parts) if p.audio is not None), None)
        self._extra_text: dict[str, Callable[[Sequence[str]], np.ndarray]] = {}
        if sound is None or sound.audio is None:
            self.audio = None
        elif sound is self._text:
            self.audio = sound.audio
        else:
            self.audio = _RenamedAudio(sound.audio, {SEMANTIC: AUDIO_TEXT})
            self._extra_text[AUDIO_TEXT] = sound.embed_texts

    @property
    def spaces(self) -> dict[str, int]:
        spaces = {SEMANTIC: self._text.spaces[SEMANTIC]}
        if self._vision is not None:
            spaces.update({s: d for s, d in self._vision.spaces.items() if s != SEMANTIC})
        return spaces

    def text_spaces(self) -> dict[str, Callable[[Sequence[str]], np.ndarray]]:
        return {SEMANTIC: self.embed_texts, **self._extra_text}

    def prepare_image(self, image: Image.Image) -> np.ndarray:
        if self._vision is None:
            raise MmsearchError(f"Model {self.spec.name!r} has no image encoder.")
        return self._vision.prepare_image(image)

    def embed_images(self, batch: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        if self._vision is None:
            raise MmsearchError(f"Model {self.spec.name!r} has no image encoder.")
        vectors = self._vision.embed_images(batch)
        if self._vision is not self._text:
            # The image tower's own text space is not the model's `semantic`: keep its
            # appearance vectors only (images are found by text through the first part then).
            vectors.pop(SEMANTIC, None)
        return vectors

    def embed_images_with_regions(
        self, batch: Sequence[np.ndarray]
    ) -> tuple[dict[str, np.ndarray], list[RegionCodes | None]]:
        if self._vision is not self._text:  # its regions would not be in `semantic` either
            return self.embed_images(batch), [None] * len(batch)
        return self._vision.embed_images_with_regions(batch)

    def region_vectors(self, codes: RegionCodes) -> np.ndarray | None:
        return self._text.region_vectors(codes)

    def region_similarities(
        self, regions: Sequence[RegionCodes], texts: np.ndarray
    ) -> list[np.ndarray | None]:
        return self._text.region_similarities(regions, texts)

    def pooled_regions(self, regions: Sequence[RegionCodes]) -> np.ndarray | None:
        return self._text.pooled_regions(regions)

    def word_template(self, kind: str) -> str:
        return self._text.word_template(kind)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._text.embed_texts(texts)

    def max_text_words(self) -> int:
        return self._text.max_text_words()
