"""The text query syntax."""

from __future__ import annotations

import pytest

from mmsearch.errors import QueryError
from mmsearch.query.parse import QuerySyntaxError, Term, parse_text


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


@pytest.mark.parametrize(
    ("query", "position", "weight"),
    [
        ("0:cat dog", 0, "0"),
        ("dog 1e9:cat", 4, "1e9"),
        ('street 99999:"red car"', 7, "99999"),
        ("-0:cat dog", 1, "0"),
        ("100.5:cat", 0, "100.5"),
    ],
)
def test_weights_out_of_range_point_at_the_weight(query: str, position: int, weight: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_text(query)
    error = caught.value
    assert isinstance(error, QueryError) and error.position == position
    lines = str(error).splitlines()
    assert lines[0] == f"Weight {weight} in the query is out of range (0 < weight <= 100):"
    assert lines[1] == f"  {query}"
    assert lines[2] == "  " + " " * position + "^"
    assert lines[3].startswith("Use a weight like ")


def test_weights_in_range_are_kept() -> None:
    assert parse_text("100:cat 0.5:dog .25:fox") == [
        Term("cat", 100.0),
        Term("dog", 0.5),
        Term("fox", 0.25),
    ]


def test_unclosed_quote_is_an_error_at_the_quote() -> None:
    with pytest.raises(QuerySyntaxError, match="never closed") as caught:
        parse_text('dog "on a leash')
    assert caught.value.position == 4


@pytest.mark.parametrize("query", ['cat ""', 'cat -"  "', '2:"" cat'])
def test_empty_quoted_term_is_an_error(query: str) -> None:
    with pytest.raises(QuerySyntaxError, match="empty"):
        parse_text(query)


def test_minus_after_the_weight_says_where_it_goes() -> None:
    with pytest.raises(QuerySyntaxError, match="Write -2:cat"):
        parse_text("dog 2:-cat")


def test_a_negative_term_first_is_fine() -> None:
    assert parse_text("-night street") == [Term("street"), Term("night", negative=True)]


def test_caret_lines_up_under_wide_characters() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_text("猫 0:cat")
    assert str(caught.value).splitlines()[2] == "  " + " " * 3 + "^"
