"""Keyword evidence: a query's terms as an SQLite FTS5 expression over what the catalog holds as
text (file and folder names, document text, sound tags, transcripts, text read in images).

    red car            "red" AND "car"         (every content word; "a", "the"... are skipped)
    "red car"          "red car"               (a phrase: the words together, in order)
    IMG_20*            "img" AND "20"*         (a prefix: IMG_2041, IMG_2077, ...)
    beach -"sun set"   "beach" NOT "sun set"

Every word is quoted, so FTS5 operators typed by a user (AND, OR, NEAR, column filters) are
read as words, never as syntax.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mmsearch.media.text import UNSPACED
from mmsearch.query.parse import Term

STOPWORDS = frozenset(
    [
        "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in",
        "is", "it", "its", "of", "on", "or", "that", "the", "their", "there", "this", "to",
        "was", "were", "with",
    ]
)  # fmt: skip
"""Words too common to be evidence that a file is the one meant; skipped outside phrases."""

_WORD = re.compile(r"[^\W_]+\*?")  # FTS5 splits words at "_" too


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _words(text: str) -> list[str]:
    """Content words of a term, each quoted; a trailing `*` makes a prefix."""
    out = []
    for word in _WORD.findall(text):
        prefix = word.endswith("*")
        word = word.rstrip("*").lower()
        if not word or (word in STOPWORDS and not prefix):
            continue
        out.append(_quote(word) + ("*" if prefix else ""))
    return out


def fts_expression(terms: Sequence[Term]) -> str | None:
    """The FTS5 query that matches items holding every positive term and no negative one;
    None when no positive term has a content word."""
    positive: list[str] = []
    negative: list[str] = []
    for term in terms:
        if term.phrase:
            words = _WORD.findall(term.text)
            parts = [_quote(" ".join(w.rstrip("*") for w in words))] if words else []
        else:
            parts = _words(term.text)
        (negative if term.negative else positive).extend(parts)
    return _all_but(positive, negative)


def _all_but(positive: list[str], negative: list[str]) -> str | None:
    """FTS5: every positive part and none of the negative ones; None without a positive."""
    if not positive:
        return None
    expression = " AND ".join(positive)
    if negative:
        expression = f"({expression}) NOT ({' OR '.join(negative)})"
    return expression


def substring_expression(terms: Sequence[Term]) -> str | None:
    """The expression for words inside run-together text (a trigram index): every content word
    of 3 or more letters of the positive terms, anywhere; None when there is none. Negatives are
    left to the main expression."""
    words = [
        _quote(word.rstrip("*").lower())
        for term in terms
        if not term.negative
        for word in _WORD.findall(term.text)
        if len(word.rstrip("*")) >= 3 and word.rstrip("*").lower() not in STOPWORDS
    ]
    return " AND ".join(words) if words else None


def unspaced_expression(terms: Sequence[Term]) -> str | None:
    """The expression over the character grams of Chinese, Japanese or Thai text
    (`media.text.unspaced_grams`): per run of such letters in a positive term, its character
    pairs in a row (a phrase), or the character itself when the run is one; every run must
    match, and a negative term's runs must not. None when no positive term has such a run, so
    a query in a spaced language never reads that table."""
    positive: list[str] = []
    negative: list[str] = []
    for term in terms:
        for run in UNSPACED.findall(term.text):
            pairs = [run[i : i + 2] for i in range(len(run) - 1)] or [run]
            (negative if term.negative else positive).append(_quote(" ".join(pairs)))
    return _all_but(positive, negative)
