"""CLIP's byte-pair tokenizer in plain Python and numpy, so a text query needs no torch.

open_clip's own tokenizer module imports torch (it returns tensors), and importing torch costs
seconds and hundreds of MB. This one reads the same merge list (`bpe_simple_vocab_16e6.txt.gz`,
copied next to the exported towers) and produces the same token ids; a test compares the two on
real captions.

The steps, as CLIP defines them: fix mojibake (ftfy), unescape HTML twice, collapse whitespace,
lower-case; split into words, numbers-one-digit-at-a-time and punctuation runs; map each word's
UTF-8 bytes to printable characters; merge adjacent symbols by the learnt merge ranks; wrap the
ids in start/end tokens and cut to the context, keeping the end token last.

The merge list is read as plain text when the export keeps it decompressed (about twice as
fast to load as the gzip file open_clip ships; a cold query pays this load once).
"""

from __future__ import annotations

import gzip
import html
import marshal
import os
import sys
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import numpy as np

# The merge list holds 49152 - 256 - 2 merges after its header line (the vocabulary is 256 byte
# symbols, the same with an end-of-word mark, the merges, and two special tokens).
_MERGES = 49152 - 256 - 2
_START, _END = "<start_of_text>", "<end_of_text>"
_WORD_END = "</w>"


@lru_cache(maxsize=1)
def _byte_symbols() -> dict[int, str]:
    """Each byte as a printable character: printable Latin-1 bytes stand for themselves, the rest
    are moved past 255 so no symbol is whitespace or a control character."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    symbols = {b: chr(b) for b in kept}
    shift = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + shift)
            shift += 1
    return symbols


def _build_tables(merges_path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(token -> id, merge "a b" -> rank) from the merge list."""
    opener = gzip.open if str(merges_path).endswith(".gz") else open
    with opener(merges_path, "rb") as handle:
        merges = handle.read().decode("utf-8").split("\n")[1 : _MERGES + 1]
    symbols = list(_byte_symbols().values())
    vocab = symbols + [s + _WORD_END for s in symbols] + [m.replace(" ", "") for m in merges]
    vocab += [_START, _END]
    # Ranks keyed by the merge line itself ("a b"): no tuple per merge to build at load.
    return dict(zip(vocab, range(len(vocab)))), dict(zip(merges, range(len(merges))))


def _tables(merges_path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """The tables, from a marshal file kept beside the merge list when it can be written.

    Building the two 49k-entry dicts from text costs ~65 ms of CPU per cold query; loading them
    back with marshal ~35 ms. The file is stamped with the merge list's size and time and with
    the marshal format and Python version (marshal is not portable across them); anything else
    (missing, stale, unreadable, a read-only cache) falls back to building.
    """
    st = merges_path.stat()
    stamp = [st.st_size, st.st_mtime_ns, marshal.version, sys.version_info[:2]]
    cache = merges_path.with_name(merges_path.name + ".tables")
    try:
        saved = marshal.loads(cache.read_bytes())
        if saved[0] == stamp:
            return saved[1], saved[2]
    except (OSError, ValueError, EOFError, TypeError, IndexError):
        pass
    ids, ranks = _build_tables(merges_path)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(marshal.dumps([stamp, ids, ranks]))
        os.replace(tmp, cache)
    except OSError:  # a read-only model cache: build each time
        tmp.unlink(missing_ok=True)
    return ids, ranks


class ClipTokenizer:
    """Texts -> `(n, context_length)` int64 token ids, as open_clip's `SimpleTokenizer` gives.

    Attributes:
        context_length: Tokens per row (77 for CLIP).
        start_id / end_id: Ids of the start and end tokens (end is the largest id).
    """

    def __init__(self, merges_path: Path, context_length: int = 77) -> None:
        # Imported here: ftfy and regex are needed only once a text is tokenised.
        import regex

        self._ids, self._ranks = _tables(Path(merges_path))
        self._cache: dict[str, list[int]] = {}
        self._pattern = regex.compile(
            rf"{_START}|{_END}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+",
            regex.IGNORECASE,
        )
        self.context_length = context_length
        self.start_id = self._ids[_START]
        self.end_id = self._ids[_END]

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids, zero-padded to the context; over-long texts are cut, ending in the end id."""
        rows = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for i, text in enumerate(texts):
            ids = [self.start_id, *self.encode(text), self.end_id]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.end_id
            rows[i, : len(ids)] = ids
        return rows

    def trim(self, tokens: np.ndarray) -> np.ndarray:
        """Drop the padding columns after the batch's last end token.

        Exact for CLIP's causal text tower: a text's vector is read at its end token, which
        attends only to the tokens before it, so the padding after it never changes the result
        (and a 5-word query costs a tenth of the full 77-token context).
        """
        ends = np.argmax(tokens == self.end_id, axis=1)
        return np.ascontiguousarray(tokens[:, : int(ends.max()) + 1])

    def encode(self, text: str) -> list[int]:
        """The ids of `text` without start and end tokens."""
        ids: list[int] = []
        for word in self._pattern.findall(clean_text(text)):
            ids.extend(self._word_ids(word))
        return ids

    def _word_ids(self, word: str) -> list[int]:
        cached = self._cache.get(word)
        if cached is None and word in (_START, _END):
            return [self._ids[word]]
        if cached is None:
            byte_symbols = _byte_symbols()
            printable = "".join(byte_symbols[b] for b in word.encode("utf-8"))
            cached = [self._ids[part] for part in self._merge(printable)]
            if len(self._cache) < 100_000:  # documents can have many distinct words
                self._cache[word] = cached
        return cached

    def _merge(self, printable: str) -> list[str]:
        """Apply the learnt merges, lowest rank first, until none applies."""
        parts = [*printable[:-1], printable[-1] + _WORD_END]
        unknown = len(self._ranks)
        while len(parts) > 1:
            pairs = {f"{a} {b}" for a, b in pairwise(parts)}
            best = min(pairs, key=lambda pair: self._ranks.get(pair, unknown))
            if best not in self._ranks:
                break
            first, second = best.split(" ")
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts


# ASCII a text may hold for ftfy to leave it as it is (besides whitespace, collapsed anyway):
# ftfy repairs mojibake, curly quotes, ligatures and widths (all non-ASCII), HTML entities (`&`)
# and control characters. Skipping it there saves importing it (~0.15 s) for most queries.
_PLAIN = frozenset(chr(c) for c in range(32, 127) if chr(c) != "&") | frozenset("\t\n\r")


def clean_text(text: str, *, lower: bool = True) -> str:
    """open_clip's cleaning: mojibake fixed (ftfy), HTML unescaped twice, whitespace collapsed,
    and lower-cased (CLIP's tokenizer; its Hugging Face tokenizers keep the case)."""
    if not set(text) <= _PLAIN:
        import ftfy

        text = ftfy.fix_text(text)
    text = " ".join(html.unescape(html.unescape(text)).strip().split())
    return text.lower() if lower else text
