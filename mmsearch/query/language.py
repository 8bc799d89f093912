"""A query in a language the index's model does not read is refused, not answered with garbage.

An English-only text tower still turns "一只猫" into some vector, and that vector lands near
whatever it lands near: on the demo index the coffee photo came back with a calibrated 0.74.
So before a text query is embedded, its language is detected with `py3langid` (langid.py's
naive Bayes over byte n-grams, its model inside the wheel, numpy only) and compared with the
languages the encoder declares (`Encoder.languages`); a model that declares none is trusted.

The detector is unreliable on a word or two of Latin letters ("café" reads as Icelandic,
"Dvořák" as Czech), and English queries borrow such words, so:

- text whose letters are all ASCII is never checked (and the detector is not even loaded:
  it costs a cold process ~1 s), which also lets ASCII-only French or Spanish through;
- text written mostly in Latin letters is refused only with at least `LATIN_MIN_WORDS` words,
  a detected language the detector is sure of (`LATIN_MIN_CONFIDENCE`) and next to no chance
  for every language the model reads (`UNREAD_CHANCE`);
- text written mostly in other letters (Han, kana, Hangul, Cyrillic, Greek, Arabic, ...) is
  refused when the model's languages together have less than `UNREAD_CHANCE`: there the
  script alone makes the detector sure, even for one character.

Which letters are Latin comes from the Unicode character names (`unicodedata`).
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Sequence
from typing import Any

from mmsearch.errors import QueryError

LATIN_MIN_WORDS = 3
LATIN_MIN_CONFIDENCE = 0.5
UNREAD_CHANCE = 0.05
MULTILINGUAL_PRESET = "offline-multilingual"
MULTILINGUAL_OPENCLIP = "open_clip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k"
"""Suggested beside the preset for users with a network: its weights (~1.5 GB) and XLM-R's
tokenizer come from the Hugging Face hub once, then run offline (`encoders/hf_tokenizer.py`)."""
LISTED_LANGUAGES = 16
"""A model reading more languages than this is said to read "N languages" in a refusal."""

_NAMES = {
    "ar": "Arabic", "bg": "Bulgarian", "cs": "Czech", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "fa": "Persian", "fr": "French", "he": "Hebrew",
    "hi": "Hindi", "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch",
    "pl": "Polish", "pt": "Portuguese", "ru": "Russian", "sv": "Swedish", "th": "Thai",
    "tr": "Turkish", "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese",
}
"""Names to show in the message only (detection never reads this); other codes show as codes."""

_lock = threading.Lock()
_identifier: Any = None


def _detector() -> Any:
    global _identifier
    with _lock:
        if _identifier is None:
            try:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier
            except ImportError:
                return None  # no detector installed: nothing is refused
            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _identifier


def language_name(code: str) -> str:
    return _NAMES.get(code, code)


def unread_language(text: str, languages: Sequence[str]) -> str | None:
    """What `text` is written in when the model reading `languages` does not read it and the
    evidence is strong enough (see the module doc), else None: the language's name and code
    when the detector is sure of it, else the script ("CJK letters": on one character the
    detector knows it is not English but not which language it is)."""
    letters = [c for c in text if c.isalpha()]
    if not letters or all(c.isascii() for c in letters):
        return None
    latin = sum(unicodedata.name(c, "").startswith("LATIN") for c in letters)
    mostly_latin = latin * 2 >= len(letters)
    if mostly_latin and sum(any(c.isalpha() for c in w) for w in text.split()) < LATIN_MIN_WORDS:
        return None
    detector = _detector()
    if detector is None:
        return None
    chances = dict(detector.rank(text))
    best = max(chances, key=chances.__getitem__)
    if best in languages or sum(chances.get(code, 0.0) for code in languages) >= UNREAD_CHANCE:
        return None
    if chances[best] >= LATIN_MIN_CONFIDENCE:
        return f"{language_name(best)} ({best})"
    if mostly_latin:
        return None
    return f"{_script(letters)} letters"


def _script(letters: Sequence[str]) -> str:
    """The commonest script among `letters`, from the first word of their Unicode names."""
    words = [unicodedata.name(c, "OTHER").split()[0] for c in letters]
    word = max(set(words), key=words.count)
    return word if word == "CJK" else word.title()


def check_query_language(texts: Sequence[str], languages: Sequence[str] | None, model: str) -> None:
    """Raise a one-line `QueryError` when the query (its terms together) is in a language the
    model does not read; `languages` None means the model did not say, and nothing is checked."""
    if not languages:
        return
    written = unread_language(" ".join(texts), languages)
    if written is None:
        return
    if tuple(languages) == ("en",):
        advice = (f"build an index with `mmsearch index FOLDER --model {MULTILINGUAL_PRESET} "
                  "--index NEW_FOLDER` to search in other languages (or, where the weights can be "
                  f"downloaded once, `--model {MULTILINGUAL_OPENCLIP}`), or write the query in English.")
    elif len(languages) > LISTED_LANGUAGES:
        advice = "write the query in another language, e.g. English."
    else:
        advice = "write the query in one of those."
    if len(languages) > LISTED_LANGUAGES:
        reads = f"{len(languages)} languages, not this one"
    else:
        reads = ", ".join(language_name(c) for c in languages)
    raise QueryError(
        f"The query is written in {written}, which this index's model {model} does not "
        f"understand (it reads {reads}): {advice}"
    )
