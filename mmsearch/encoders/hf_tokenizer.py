"""Hugging Face tokenizers (XLM-R's SentencePiece and the like) without torch or transformers.

OpenCLIP models whose text tower is a Hugging Face model (`xlm-roberta-base-ViT-B-32`) tokenize
with open_clip's `HFTokenizer`: transformers' `AutoTokenizer`, which imports torch-sized
machinery (transformers itself takes seconds). At export time the tokenizer transformers built
is saved, as the `tokenizers` library's own JSON, beside the towers (`save_backend`: the very
pipeline transformers runs, not the hub's file, which transformers may rebuild differently);
a query then loads only that file with `tokenizers` (Rust, ~20 ms) and pads and truncates as
`HFTokenizer` does (`HfTokenizer`). The export checks the ids against open_clip's.

The tokenizer files themselves come from the Hugging Face cache or a local folder, never the
network from here: `cached_folder` finds them, or says in one sentence what to do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.encoders.clip_tokenizer import clean_text
from mmsearch.errors import ModelUnavailableError

TOKENIZER_FILE = "tokenizer.json"
_TOKENIZER_FILES = (TOKENIZER_FILE, "tokenizer_config.json", "sentencepiece.bpe.model")
"""Any of these in a folder or cached snapshot means the tokenizer can be built from it."""


class MissingTokenizerError(ModelUnavailableError):
    """A model's Hugging Face tokenizer is neither in the cache nor in a local folder."""


def hub_howto(name: str) -> str:
    """How a user fills the Hugging Face cache with repository `name`'s small files."""
    return (
        f"on a machine with a network run `hf download {name} {TOKENIZER_FILE} config.json` "
        "(or use the model there once) and copy its Hugging Face cache "
        "(~/.cache/huggingface, or HF_HOME) here"
    )


def cached_folder(name: str, model: str) -> Path:
    """The local folder holding Hugging Face tokenizer `name`: `name` itself when it is a
    folder, else its snapshot in the Hugging Face cache. Never touches the network.

    Args:
        name: A hub repository id (`xlm-roberta-base`) or a folder path.
        model: The model that needs it, for the error message.

    Raises:
        MissingTokenizerError: Neither has the tokenizer's files.
    """
    folder = Path(name).expanduser()
    if folder.is_dir():
        if any((folder / f).is_file() for f in _TOKENIZER_FILES):
            return folder
        raise MissingTokenizerError(
            f"The folder {str(folder)!r} that {model} names for its tokenizer holds none of "
            f"{', '.join(_TOKENIZER_FILES)}."
        )
    from huggingface_hub import constants, try_to_load_from_cache

    for filename in _TOKENIZER_FILES:
        found = try_to_load_from_cache(name, filename)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found).parent
    raise MissingTokenizerError(
        f"{model} needs the Hugging Face tokenizer {name!r}, which is not in the Hugging Face "
        f"cache ({constants.HF_HUB_CACHE}) and is not downloaded from here (no network, or "
        f"HF_HUB_OFFLINE is set): {hub_howto(name)}; or, with no network at all, build the "
        "index with `--model offline-multilingual`."
    )


def save_backend(backend: Any, path: Path) -> None:
    """Write a `tokenizers.Tokenizer` (transformers' `backend_tokenizer`) without the padding
    and truncation a call left on it: `HfTokenizer` sets its own."""
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_padding()
    copy.no_truncation()
    copy.save(str(path))


class HfTokenizer:
    """Texts -> `(n, context_length)` int64 ids, as open_clip's `HFTokenizer` gives them:
    whitespace-cleaned (not lower-cased), special tokens added, cut to the context, padded.

    Attributes:
        context_length: Ids per row.
        pad_id: The padding id (XLM-R: 1).
    """

    def __init__(self, path: Path, context_length: int, pad_id: int) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.enable_truncation(max_length=context_length)
        pad_token = self._tokenizer.id_to_token(pad_id)
        if pad_token is None:
            raise ModelUnavailableError(f"The tokenizer at {path} has no token with id {pad_id}.")
        self._tokenizer.enable_padding(length=context_length, pad_id=pad_id, pad_token=pad_token)
        self.context_length = context_length
        self.pad_id = pad_id

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.context_length), dtype=np.int64)
        # One at a time: `encode_batch` starts tokenizers' thread pool, which then warns on
        # stderr at every later fork (indexing runs ffmpeg); a batch here is tiny next to the tower.
        rows = [self._tokenizer.encode(clean_text(t, lower=False)).ids for t in texts]
        return np.asarray(rows, dtype=np.int64)

    def trim(self, tokens: np.ndarray) -> np.ndarray:
        """Drop the padding columns after the batch's longest text.

        Exact for open_clip's Hugging Face towers with a mean or CLS pooler: padding is masked
        out of attention and pooling, and RoBERTa's positions count only real tokens, so the
        columns after the last real one never change the result.
        """
        real = np.flatnonzero((tokens != self.pad_id).any(axis=0))
        return np.ascontiguousarray(tokens[:, : int(real[-1]) + 1 if real.size else 1])
