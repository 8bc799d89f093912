"""Answering searches: parse -> embed -> search each space -> fuse -> hits."""

from mmsearch.query.filters import Filters
from mmsearch.query.parse import ParsedQuery, Term, format_query, parse_query, parse_text
from mmsearch.query.search import Query, Searcher

__all__ = [
    "Filters", "ParsedQuery", "Query", "Searcher", "Term", "format_query", "parse_query",
    "parse_text",
]
