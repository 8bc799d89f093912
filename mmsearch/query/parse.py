"""The text query syntax: weighted terms and negatives.

    sunset beach               one phrase
    2:"red car" street         "red car" counts twice as much as "street"
    dog -"on a leash" -cat     results like "dog", pushed away from the negatives

Bare words join into one phrase (the model reads them together); quoted or weighted terms
stand alone. `N:` is a weight only when a letter or a quote follows it, so "at 8:25" stays text.
A weight must be above 0 and at most 100. Mistakes (a weight out of range, a quote never
closed, an empty quoted term) raise `QuerySyntaxError`, a `QueryError` whose message shows the
query with a caret under the mistake and says how to fix it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from mmsearch.errors import QueryError

MAX_WEIGHT = 100.0
"""The largest weight a term may carry (weights are relative; 100 already drowns the rest)."""

_TOKEN = re.compile(
    r"(?P<neg>-)?"
    # A weight: a number (decimals and exponents allowed, so "1e9:" is caught as one) and a
    # colon followed by a letter or a quote, possibly after a misplaced minus.
    r'(?:(?P<weight>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?):(?=-?(?:"|[^\W\d_])))?'
    r'(?:"(?P<quoted>[^"]*)(?P<close>")?|(?P<bare>\S+))'
)


@dataclass(frozen=True)
class Term:
    text: str
    weight: float = 1.0
    negative: bool = False


class QuerySyntaxError(QueryError):
    """A query string that cannot be read as written.

    Attributes:
        query: the query as given.
        position: index into `query` of the mistake (where the caret points).
    """

    def __init__(self, problem: str, query: str, position: int, fix: str) -> None:
        super().__init__(f"{problem}:\n{caret_display(query, position)}\n{fix}")
        self.query = query
        self.position = position


def _width(text: str) -> int:
    """Terminal columns `text` takes (wide East Asian characters count 2, combining marks 0)."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _printable(text: str) -> str:
    """`text` on one line: whitespace becomes a space and other control characters `?`."""
    return "".join(
        " " if ch.isspace() else "?" if unicodedata.category(ch)[0] == "C" else ch for ch in text
    )


def caret_display(query: str, position: int, indent: str = "  ") -> str:
    """Two lines: the query, and a caret under the character at `position`."""
    shown = _printable(query)
    return f"{indent}{shown}\n{indent}{' ' * _width(shown[:position])}^"


def _weight_example(text: str, quoted: bool) -> str:
    return f'2:"{text}"' if quoted else f"2:{text}"


def parse_text(query: str) -> list[Term]:
    """Split a query string into terms.

    Raises:
        QuerySyntaxError: a weight out of range (0 < weight <= 100), an unclosed quote or an
            empty quoted term; the message points at it.
        QueryError: nothing positive is left to search for (only negative terms).
    """
    terms: list[Term] = []
    loose: list[str] = []
    for m in _TOKEN.finditer(query):
        quoted, bare, weight = m.group("quoted"), m.group("bare"), m.group("weight")
        neg = bool(m.group("neg"))
        if quoted is not None and m.group("close") is None:
            quote_at = m.start("quoted") - 1
            raise QuerySyntaxError(
                "A quote in the query is never closed",
                query,
                quote_at,
                'Add the closing quote after the phrase, e.g. "red car", or remove the quote.',
            )
        if quoted is not None and not quoted.strip():
            raise QuerySyntaxError(
                "A quoted term in the query is empty",
                query,
                m.start("quoted") - 1,
                "Put words between the quotes, or remove them.",
            )
        text = (quoted if quoted is not None else bare).strip()
        if weight is not None:
            if bare is not None and bare.startswith("-"):
                raise QuerySyntaxError(
                    "The minus of a negative term goes before its weight",
                    query,
                    m.start("weight"),
                    f"Write -{weight}:{bare[1:]} to push results away from {bare[1:]!r}.",
                )
            value = float(weight)
            if not 0 < value <= MAX_WEIGHT:
                example = ("-" if neg else "") + _weight_example(text, quoted is not None)
                as_text = f' (or write "{weight}:{text}" in quotes to search for it as text)'
                raise QuerySyntaxError(
                    f"Weight {weight} in the query is out of range (0 < weight <= {MAX_WEIGHT:g})",
                    query,
                    m.start("weight"),
                    f"Use a weight like {example}, or drop the weight"
                    + (as_text if quoted is None else "")
                    + ".",
                )
        if not text:
            continue
        if neg:
            terms.append(Term(text, float(weight or 1.0), negative=True))
        elif weight is not None or quoted is not None:
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
