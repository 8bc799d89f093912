"""Text documents: decoding their bytes whatever the encoding, chunking them; file-name words."""

from __future__ import annotations

import codecs
import logging
import os
import re

from mmsearch.errors import MediaError

log = logging.getLogger(__name__)

# UTF-32 first: its little-endian BOM starts with the UTF-16 one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SNIFF_BYTES = 8192  # how far to look for NUL bytes (git looks at the first 8000)
_UNSPACED_CHARS = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3005\u3040-\u30ff\u31f0-\u31ff"  # 々, Hiragana, Katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs
    "\U00020000-\U0003134f"
)
UNSPACED = re.compile(f"[{_UNSPACED_CHARS}]+")
"""A run of letters of a script written without spaces between words (Chinese, Japanese, Thai,
...): Unicode's own blocks, since neither SQLite's tokenizer nor `\\S+` can find its words."""
WORD = re.compile(f"[{_UNSPACED_CHARS}]|[^\\s{_UNSPACED_CHARS}]+")
"""One word for chunking and counting: a run of non-space characters, or a single character of
a script written without spaces (a Chinese document of 3,000 characters is then ~17 chunks of
180 characters, not one "word" of 3,000)."""
_WORD = WORD
_CLOSERS = "\"')]}»”’*_」』）"  # may follow a sentence's final mark: ."  .)  .**
_SENTENCE_ENDS = (".", "!", "?", "…", ":", ";", "。", "！", "？", "；", "：")
_NAME_SEPARATORS = re.compile(r"[\W_]+")


def decode_text(data: bytes, *, path: str, max_bytes: int) -> str:
    """Decode a text document's bytes; any encoding gives some text, binary data is refused.

    UTF-8 (with or without BOM) and UTF-16/32 with a BOM are decoded as such; anything else
    that is not UTF-8 is read as Windows-1252, or Latin-1 where that fails. Line ends become
    "\\n".

    Args:
        data: The whole file's bytes.
        path: The file's path, for error messages.
        max_bytes: Larger files are refused.

    Returns:
        The text, never empty or only whitespace.

    Raises:
        MediaError: Too large, binary content, or no text.
    """
    if len(data) > max_bytes:
        raise MediaError(path, f"text file is {len(data)} bytes, above the {max_bytes} limit")
    text = None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = data.decode(encoding, errors="replace")
            break
    if text is None:
        if b"\x00" in data[:_SNIFF_BYTES]:
            raise MediaError(path, "binary content, not text")
        text = _decode_8bit(data, path)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    if not text.strip():
        raise MediaError(path, "no text")
    return text


def _decode_8bit(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")  # what most non-UTF-8 Western text files really are
        encoding = "cp1252"
    except UnicodeDecodeError:  # cp1252 leaves five bytes undefined; Latin-1 defines all 256
        text = data.decode("latin-1")
        encoding = "latin-1"
    log.debug("%s is not UTF-8; read as %s", path, encoding)
    return text


def chunk_text(text: str, max_words: int, overlap: int = 30) -> list[str]:
    """Split text into chunks of at most `max_words` words for embedding.

    Each chunk ends at the best break in the second half of its window: a paragraph end,
    else a sentence end, else a line end, else wherever the window ends. The next chunk
    starts `overlap` words before that break (less if `max_words` is small), so a sentence
    cut in two is still whole in one chunk. Chunks keep the original spacing and line breaks.

    Args:
        text: The document.
        max_words: The most whitespace-separated words in one chunk (at least 1).
        overlap: Words repeated from the end of one chunk at the start of the next.

    Returns:
        The chunks in order; one chunk for a short text, none for a text without words.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, not {max_words}")
    spans = [m.span() for m in _WORD.finditer(text)]
    if len(spans) <= max_words:
        return [text[spans[0][0] : spans[-1][1]]] if spans else []
    # Below half a window of fresh words per chunk, the chunking would crawl.
    overlap = max(0, min(overlap, (max_words - 1) // 2))

    def break_after(i: int) -> int:
        """How good a place to end a chunk is after word i (higher is better)."""
        gap = text[spans[i][1] : spans[i + 1][0]]
        if gap.count("\n") >= 2:
            return 3
        if text[spans[i][0] : spans[i][1]].rstrip(_CLOSERS).endswith(_SENTENCE_ENDS):
            return 2
        return 1 if "\n" in gap else 0

    chunks = []
    start = 0
    while start + max_words < len(spans):
        # `end` is one past the chunk's last word; a later end wins among equally good breaks.
        candidates = range(start + (max_words + 1) // 2, start + max_words + 1)
        end = max(candidates, key=lambda e: (break_after(e - 1), e))
        chunks.append(text[spans[start][0] : spans[end - 1][1]])
        start = end - overlap
    chunks.append(text[spans[start][0] : spans[-1][1]])
    return chunks


def name_words(path: str) -> str:
    """The words of a file's name and of its folder's name, for full-text search.

    Splits on punctuation, spaces and underscores and between camelCase words, and drops the
    extension: "/photos/Trip 2019/IMG_2034 red-car.jpg" gives "Trip 2019 IMG 2034 red car".

    Args:
        path: A file path.

    Returns:
        The words separated by single spaces (empty if there are none).
    """
    folder = os.path.basename(os.path.dirname(path))
    stem = os.path.splitext(os.path.basename(path))[0]
    words = []
    for part in _NAME_SEPARATORS.split(f"{folder} {stem}"):
        if part:
            words.extend(_split_camel_case(part))
    return " ".join(words)


def _split_camel_case(word: str) -> list[str]:
    """"redCar" -> red Car, "HTMLParser" -> HTML Parser; digits and capitals alone stay put."""
    pieces = []
    current = word[0]
    for prev, char, following in zip(word, word[1:], word[2:] + " "):
        if char.isupper() and (prev.islower() or (prev.isupper() and following.islower())):
            pieces.append(current)
            current = char
        else:
            current += char
    pieces.append(current)
    return pieces


_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
_NUMBER = re.compile(r"(?<![\d.,])(\d{1,2})(?![\d,]|\.\d)")


def number_words(text: str) -> str:
    """The small numbers written as digits in `text`, spelled out ("7 apples" gives "seven").

    Transcribers write "7" where someone said "seven"; keyword search for the word must find it.

    Args:
        text: Any text, e.g. a transcript.

    Returns:
        The spelled-out numbers (0 to 20) separated by spaces, in order; empty if there are none.
    """
    words = []
    for match in _NUMBER.finditer(text):
        value = int(match.group(1))
        if value < len(_NUMBER_WORDS):
            words.append(_NUMBER_WORDS[value])
    return " ".join(words)


def unspaced_grams(text: str) -> str:
    """Every single character and every pair of neighbours of the runs of `UNSPACED` letters
    in `text`, separated by spaces ("" when there is none): "烤面包" gives "烤 面 包 烤面 面包".

    Stored in a full-text table of their own (`store/catalog.py`, `text_grams`), they let a
    keyword of one or two characters ("猫", "面包") match inside a run of any length, where
    SQLite's unicode61 tokenizer sees the whole run as one word and the trigram tokenizer needs
    three characters. Queries ask for the pairs of their own runs (`query/keywords.py`).
    """
    out: list[str] = []
    for match in UNSPACED.finditer(text):
        run = match.group()
        out.extend(run)
        out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return " ".join(out)
