"""The text query syntax."""

from __future__ import annotations

import pytest

from mmsearch.errors import QueryError
from mmsearch.query.parse import Term, parse_text


def test_bare_words_form_one_phrase() -> None:
    assert parse_text("a cat on a sofa") == [Term("a cat on a sofa")]


def test_weights_quotes_and_negatives() -> None:
    assert parse_text('2:"red car" street -night -"rainy day"') == [
        Term("street"),
        Term("red car", 2.0),
        Term("night", negative=True),
        Term("rainy day", negative=True),
    ]


def test_words_with_inner_hyphens_are_not_negatives() -> None:
    assert parse_text("black-and-white photo") == [Term("black-and-white photo")]


def test_only_negatives_is_an_error() -> None:
    with pytest.raises(QueryError):
        parse_text("-cat -dog")


def test_times_and_ratios_are_text_not_weights() -> None:
    assert parse_text("A clock on a building that says 8:25.") == [
        Term("A clock on a building that says 8:25.")
    ]
    assert parse_text("3:2 aspect 2:sunset") == [Term("3:2 aspect"), Term("sunset", 2.0)]
