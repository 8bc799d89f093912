"""A query's parts as vectors: its weighted and negative terms through each text tower, its
example images and sounds through the model (or, when an example is indexed and unchanged, its
stored vectors from the catalog)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmsearch.encoders.base import ACOUSTIC, SEMANTIC, VISUAL, Encoder, l2_normalise
from mmsearch.errors import MediaError, QueryError
from mmsearch.media.paths import canonical_path
from mmsearch.query.language import check_query_language
from mmsearch.query.parse import Term
from mmsearch.query.words import remember_words
from mmsearch.store.catalog import Catalog
from mmsearch.store.spaces import SpaceSet

if TYPE_CHECKING:  # pydantic stays off a cold search's path (config_quick)
    from mmsearch.config import Settings

NEGATIVE_WEIGHT = 0.5
"""How hard a negative term pushes away, relative to a positive term of weight 1."""
_EXAMPLE_SECONDS = 600.0
"""An example sound longer than this is judged by its first ten minutes."""


class QueryEmbedder:
    """Embeds queries for one index with its model."""

    def __init__(
        self, catalog: Catalog, spaces: SpaceSet, encoder: Callable[[], Encoder], settings: Settings,
        along: Callable[[Encoder, Sequence[Term]], list[str]] | None = None,
    ) -> None:
        """`along`: texts to embed in the same run as a query's terms in the `semantic` space
        (the reranker's words, where the model says one run costs less than two); their
        vectors are remembered for the reranker (`query.words`)."""
        self.catalog = catalog
        self.spaces = spaces
        self._encoder = encoder
        self.settings = settings
        self._along = along

    def vectors(
        self,
        terms: Sequence[Term],
        images: Sequence[str] = (),
        audios: Sequence[str] = (),
        given: dict[str, np.ndarray] | None = None,
        image_weight: float = 1.0,
        audio_weight: float = 1.0,
    ) -> dict[str, tuple[np.ndarray, float]]:
        """space -> (unit query vector, fusion weight), for the weighted and negative `terms`,
        example `images` and `audios`, and ready-made vectors (`given`, by space).

        Raises:
            QueryError: nothing to search for, or an example that cannot be used.
        """
        given = given or {}
        if not terms and not images and not audios and not given:
            raise QueryError(
                "Nothing to search for: give query text, an example image or sound, or several."
            )
        out: dict[str, tuple[np.ndarray, float]] = {
            space: (l2_normalise(vector), 1.0) for space, vector in given.items()
        }
        if terms:
            encoder = self._encoder()
            check_query_language([t.text for t in terms], encoder.languages, encoder.spec.name)
            signed = np.array(
                [(-NEGATIVE_WEIGHT if t.negative else 1.0) * t.weight for t in terms], np.float32
            )
            texts = [t.text for t in terms]
            # Most models have one text space; a composite has one per text tower, each searched.
            for space, embed in encoder.text_spaces().items():
                if space == SEMANTIC or space in self.spaces.dims:
                    words = self._along(encoder, terms) if space == SEMANTIC and self._along else []
                    vectors = embed(texts + words)
                    if words:
                        remember_words(encoder, words, vectors[len(texts) :])
                    out[space] = (l2_normalise(signed @ vectors[: len(texts)]), 1.0)
        if images:
            visual = np.stack([self._example_image(p) for p in images])
            out[VISUAL] = (l2_normalise(visual.sum(axis=0)), image_weight)
        if audios:
            acoustic = np.stack([self._example_audio(p) for p in audios])
            out[ACOUSTIC] = (l2_normalise(acoustic.sum(axis=0)), audio_weight)
        return out

    def _stored_vector(self, path: str, space: str) -> np.ndarray | None:
        """An indexed, unchanged example's own vector (mean of its chunks), else None."""
        row = self.catalog.item_by_path(path)
        stat = Path(path).stat()
        if row and row.status == "ok" and row.size == stat.st_size and row.mtime_ns == stat.st_mtime_ns:
            stored = self.catalog.item_vectors([row.id], space).get(row.id)
            if stored is not None:
                return l2_normalise(stored.mean(axis=0))
        return None

    def _example_audio(self, path: str) -> np.ndarray:
        """The example sound's acoustic vector: from the catalog when it is indexed and unchanged."""
        absolute = canonical_path(path)
        if not Path(absolute).is_file():
            raise QueryError(f"Example sound {path} does not exist.")
        stored = self._stored_vector(absolute, ACOUSTIC)
        if stored is not None:
            return stored
        encoder = self._encoder()
        if encoder.audio is None or ACOUSTIC not in encoder.audio.spaces:
            raise QueryError(
                f"This index's model ({encoder.spec.name}) cannot compare sounds; search by text."
            )
        try:
            from mmsearch.media.audio import decode_audio  # the audio stack: only for examples

            waveform, _ = decode_audio(
                absolute, rate=encoder.audio.sample_rate, max_seconds=_EXAMPLE_SECONDS
            )
            vectors = encoder.audio.example_vectors(encoder.audio.embed_recording([waveform]))
        except MediaError as exc:
            raise QueryError(f"Example sound {path} cannot be used: {exc.reason}") from exc
        if ACOUSTIC not in vectors:
            raise QueryError(f"Example sound {path} cannot be used: no audio the model could use.")
        return vectors[ACOUSTIC]

    def _example_image(self, path: str) -> np.ndarray:
        """The example's visual vector: from the catalog when it is indexed and unchanged."""
        absolute = canonical_path(path)
        file = Path(absolute)
        if not file.is_file():
            raise QueryError(f"Example image {path} does not exist.")
        stored = self._stored_vector(absolute, VISUAL)
        if stored is not None:
            return stored
        encoder = self._encoder()
        if not encoder.images:
            raise QueryError(
                f"This index's model ({encoder.spec.name}) cannot compare images; search by text."
            )
        from mmsearch.media.images import decode_image  # PIL: only for example images

        try:
            data = file.read_bytes()
            decoded = decode_image(
                data, path=absolute, max_pixels=self.settings.max_image_pixels,
                min_side=encoder.input_size,
            )
        except (MediaError, OSError) as exc:
            reason = exc.reason if isinstance(exc, MediaError) else str(exc)
            raise QueryError(f"Example image {path} cannot be used: {reason}") from exc
        vectors = encoder.embed_images([encoder.prepare_image(decoded.image)])
        return np.asarray(vectors[VISUAL][0], dtype=np.float32)
