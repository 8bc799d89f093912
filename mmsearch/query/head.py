"""The tuned cross-attention head at query time: an ONNX file run with onnxruntime, no torch.

`mmsearch tune` trains the head (`mmsearch/learning/head.py`, torch) on a collection's own
captions and, when held-out captions show a gain, exports it into the index folder as
`HEAD_FILE`. The reranker (`query/rerank.py`) then asks it for the region score instead of its
numpy late interaction (which the untrained head equals exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.encoders.regions import LABEL_TOPK, PATCH_INT8, RegionCodes
from mmsearch.errors import IndexFormatError

HEAD_FILE = "rerank-head.onnx"
HEAD_INPUTS = ("words", "region_ids", "region_weights")
PATCH_HEAD_INPUTS = ("words", "regions")
"""Inputs of a head for regions stored as vectors (`regions.PATCH_INT8`, OpenCLIP)."""
HEAD_OUTPUT = "scores"
TOP_REGIONS = 5
"""A word's match with an image pools its best this-many region cosines: one region is noisy
(a stray "umbrella" cell), the whole image is what the first stage already saw."""


class HeadScorer:
    """Runs an exported head on a query's word vectors and its candidates' region codes."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # A few small products per query: a second thread only waits on a busy machine.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session: Any = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for unreadable files
            raise IndexFormatError(
                f"The tuned reranking head {path} cannot be read ({exc}); delete it (search then "
                "uses the untuned reranker) or run `mmsearch tune` again."
            ) from exc
        inputs = self._session.get_inputs()
        self.format = PATCH_INT8 if tuple(i.name for i in inputs) == PATCH_HEAD_INPUTS else LABEL_TOPK
        shape = inputs[1].shape
        self.regions, self.width = int(shape[1]), int(shape[2])

    def scores(self, words: np.ndarray, codes: Sequence[RegionCodes]) -> list[float | None]:
        """Per candidate, the head's score; None for regions the head was not built for."""
        fits = [c.format == self.format and (c.count, c.width) == (self.regions, self.width) for c in codes]
        out: list[float | None] = [None] * len(codes)
        if not any(fits):
            return out
        fitting = [c for c, ok in zip(codes, fits) if ok]
        words = np.ascontiguousarray(words, np.float32)
        if self.format == PATCH_INT8:
            feeds = {PATCH_HEAD_INPUTS[0]: words, PATCH_HEAD_INPUTS[1]: np.stack([c.vectors() for c in fitting])}
        else:
            decoded = [c.label_topk() for c in fitting]
            feeds = {
                HEAD_INPUTS[0]: words,
                HEAD_INPUTS[1]: np.stack([ids for ids, _ in decoded]),
                HEAD_INPUTS[2]: np.stack([weights for _, weights in decoded]),
            }
        got = iter(self._session.run([HEAD_OUTPUT], feeds)[0].tolist())
        return [next(got) if ok else None for ok in fits]
