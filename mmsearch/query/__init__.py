"""Answering searches: parse -> embed -> search each space -> fuse -> hits.

`Query` and `Searcher` load on first access: the CLI parses a query (to report a syntax error at
once) before anything else, and the parser must not bring in the catalog, the vector store and
the reranker with it.
"""

from typing import TYPE_CHECKING, Any

from mmsearch.query.filters import Filters
from mmsearch.query.parse import ParsedQuery, Term, format_query, parse_query, parse_text

if TYPE_CHECKING:
    from mmsearch.query.search import Query, Searcher

__all__ = [
    "Filters", "ParsedQuery", "Query", "Searcher", "Term", "format_query", "parse_query",
    "parse_text",
]


def __getattr__(name: str) -> Any:
    if name in ("Query", "Searcher"):
        from mmsearch.query import search

        return getattr(search, name)
    raise AttributeError(f"module 'mmsearch.query' has no attribute {name!r}")
