"""Answering searches: parse -> embed -> search each space -> fuse -> hits."""

from mmsearch.query.parse import Term, parse_text
from mmsearch.query.search import Filters, Query, Searcher

__all__ = ["Filters", "Query", "Searcher", "Term", "parse_text"]
