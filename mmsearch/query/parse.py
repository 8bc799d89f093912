"""The text query syntax: weighted terms and negatives.

    sunset beach               one phrase
    2:"red car" street         "red car" counts twice as much as "street"
    dog -"on a leash" -cat     results like "dog", pushed away from the negatives

Bare words join into one phrase (the model reads them together); quoted or weighted terms
stand alone. `N:` is a weight only when a letter or a quote follows it, so "at 8:25" stays text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mmsearch.errors import QueryError

_TOKEN = re.compile(
    r'(?P<neg>-)?(?:(?P<weight>\d+(?:\.\d+)?):(?=["\w])(?![\d_]))?'
    r'(?:"(?P<quoted>[^"]*)"|(?P<bare>\S+))'
)


@dataclass(frozen=True)
class Term:
    text: str
    weight: float = 1.0
    negative: bool = False


def parse_text(query: str) -> list[Term]:
    """Split a query string into terms; raises `QueryError` if nothing positive is left."""
    terms: list[Term] = []
    loose: list[str] = []
    for m in _TOKEN.finditer(query):
        text = (m.group("quoted") if m.group("quoted") is not None else m.group("bare")).strip()
        neg, weight = bool(m.group("neg")), m.group("weight")
        if not text:
            continue
        if neg:
            terms.append(Term(text, float(weight or 1.0), negative=True))
        elif weight is not None or m.group("quoted") is not None:
            terms.append(Term(text, float(weight or 1.0)))
        else:
            loose.append(text)
    if loose:
        terms.insert(0, Term(" ".join(loose)))
    if not any(not t.negative for t in terms) and terms:
        raise QueryError(
            f"The query {query!r} has only negative terms; add something to search for."
        )
    return terms
