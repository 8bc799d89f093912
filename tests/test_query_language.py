"""The query language: filters, examples and cut-offs in one string, and the errors a user sees.

Table-driven cases give the exact messages; hypothesis checks that any string either parses or
fails with a `QueryError` pointing inside it, and that the canonical form reads back equal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import COLOURS, make_image
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image

from mmsearch import Library, QueryError
from mmsearch.config import Settings
from mmsearch.query import Filters, ParsedQuery, Term, format_query, parse_query
from mmsearch.query.parse import QuerySyntaxError

VALID = [
    ("red car", ParsedQuery(terms=(Term("red car"),))),
    (
        '"red car" 2:"at night" -people',
        ParsedQuery(terms=(Term("red car"), Term("at night", 2.0), Term("people", negative=True))),
    ),
    ("kind:image dog", ParsedQuery(terms=(Term("dog"),), filters=Filters(kinds=("image",)))),
    ("kind:photos,sounds", ParsedQuery(filters=Filters(kinds=("image", "audio")))),
    ("-kind:audio rain", ParsedQuery(terms=(Term("rain"),), filters=Filters(not_kinds=("audio",)))),
    ('folder:"~/My Photos" -folder:tmp', ParsedQuery(filters=Filters(folders=("~/My Photos",), not_folders=("tmp",)))),
    ("ext:JPG,.png -ext:gif", ParsedQuery(filters=Filters(extensions=("jpg", "png"), not_extensions=("gif",)))),
    ("after:2020-01 before:2021", ParsedQuery(filters=Filters(after="2020-01-01T00:00:00", before="2021-01-01T00:00:00"))),
    ("date:2020-02", ParsedQuery(filters=Filters(after="2020-02-01T00:00:00", before="2020-03-01T00:00:00"))),
    ("date:2020-12-31", ParsedQuery(filters=Filters(after="2020-12-31T00:00:00", before="2021-01-01T00:00:00"))),
    ("modified-after:2024-6", ParsedQuery(filters=Filters(modified_after="2024-06-01T00:00:00"))),
    ("size>2mb size<=1.5GB", ParsedQuery(filters=Filters(min_size=2_000_001, max_size=1_500_000_000))),
    ("size:>=10kib", ParsedQuery(filters=Filters(min_size=10_240))),
    ("width>=1920 height<600", ParsedQuery(filters=Filters(min_width=1920, max_height=599))),
    ("width=800", ParsedQuery(filters=Filters(min_width=800, max_width=800))),
    ("min:0.3 cat", ParsedQuery(terms=(Term("cat"),), min_score=0.3)),
    ('image:ref.jpg image:"b c.png" audio:x.wav', ParsedQuery(images=("ref.jpg", "b c.png"), audios=("x.wav",))),
    ("at 8:25 http://example.com", ParsedQuery(terms=(Term("at 8:25 http://example.com"),))),
    ("IMG_20* beach", ParsedQuery(terms=(Term("IMG_20* beach"),))),
]


@pytest.mark.parametrize(("query", "expected"), VALID, ids=[q for q, _ in VALID])
def test_valid_queries(query: str, expected: ParsedQuery) -> None:
    parsed = parse_query(query)
    assert parsed == expected
    assert parse_query(format_query(parsed)) == parsed


INVALID = [
    ("knd:image cat", 0, "Unknown filter 'knd'", "Did you mean kind:? (Write \"knd:...\" in quotes to search for it as text.)"),
    ("dog kind:vidoe", 9, "Unknown kind 'vidoe'", "Did you mean kind:video? Kinds are image, text, audio and video."),
    ("dog kind:flim", 9, "Unknown kind 'flim'", "Did you mean kind:video? Kinds are image, text, audio and video."),
    ("kind:imgae", 5, "Unknown kind 'imgae'", "Did you mean kind:image? Kinds are image, text, audio and video."),
    ("duration>long", 9, "'long' is not a length of time", "Write e.g. duration>30s, duration<=2m or duration<1:30."),
    ("after:2020-13", 6, "'2020-13' is not a real date", "Check the month (1-12) and the day."),
    ("before:last-week", 7, "'last-week' is not a date", "Write dates as YYYY, YYYY-MM or YYYY-MM-DD, e.g. before:2021-06."),
    ("size>2xb", 5, "'2xb' is not a size", "Write a number with an optional unit: b, kb, mb, gb (e.g. size>2mb)."),
    ("width>wide", 6, "'wide' is not a number of pixels", "Write e.g. width>=1080."),
    ("min:3", 4, "min:3 is not a score", "Give a number from -1 to 1, e.g. min:0.3."),
    ("cat size:", 9, "The filter size: has no value", "Write e.g. size>2mb or size<=500kb."),
    ("after>2020", 5, "The filter after takes after:VALUE, not after>", "Write e.g. after:2021-06 (YYYY, YYYY-MM or YYYY-MM-DD)."),
    ("-min:0.2 cat", 0, "-min: cannot be negated", "Only kind:, folder: and ext: have a negative form. Write e.g. min:0.3."),
    ('dog folder:"~/a b', 11, "A quote in the query is never closed", 'Add the closing quote after the phrase, e.g. "red car", or remove the quote.'),
    ("0:cat", 0, "Weight 0 in the query is out of range (0 < weight <= 100)", 'Use a weight like 2:cat, or drop the weight (or write "0:cat" in quotes to search for it as text).'),
]


@pytest.mark.parametrize(("query", "position", "problem", "fix"), INVALID, ids=[q for q, *_ in INVALID])
def test_mistakes_point_at_themselves_and_say_the_fix(
    query: str, position: int, problem: str, fix: str
) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    assert str(caught.value).splitlines() == [
        f"{problem}:", f"  {query}", "  " + " " * position + "^", fix
    ]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=12),
            st.sampled_from(
                ["kind:", "-kind:", "folder:", "ext:", "after:", "before:", "date:", "size>",
                 "size<=", "width>=", "min:", "image:", "audio:", '"', "-", "2:", "0.5:",
                 "2020-01", "mb", "image", ",", " ", "knd:", "*"]
            ),
        ),
        max_size=8,
    ).map("".join)
)
def test_any_string_parses_or_fails_cleanly_and_round_trips(query: str) -> None:
    try:
        parsed = parse_query(query)
    except QuerySyntaxError as exc:
        assert 0 <= exc.position <= len(query)
        return
    except QueryError:
        return
    assert parse_query(format_query(parsed)) == parsed


def _dated_photo(path: Path, colour: tuple[int, int, int], taken: str | None, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if taken:
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken
    Image.new("RGB", (64, 48), colour).save(path, exif=exif)
    os.utime(path, (mtime, mtime))
    return path


def test_filters_in_the_query_text_restrict_what_comes_back(tmp_path: Path, media: Path) -> None:
    import time

    jan_2024 = time.mktime((2024, 1, 15, 12, 0, 0, 0, 0, -1))
    _dated_photo(media / "trips" / "old.jpg", COLOURS["red"], "2019:06:01 12:00:00", jan_2024)
    _dated_photo(media / "trips" / "new.jpg", COLOURS["red"], None, jan_2024)
    big = make_image(media / "big.png", COLOURS["red"], size=(400, 300), stripe=3)
    with Library.open(tmp_path / "ix", model="hash-test", settings=Settings()) as lib:
        lib.index([media])

        def names(query: str, **kw: object) -> set[str]:
            return {Path(h.path).name for h in lib.search(query, k=50, min_score=-1, **kw)}

        assert names("red date:2019") == {"old.jpg"}  # taken in 2019 (EXIF), modified 2024
        assert names("red after:2024-01 kind:image") >= {"new.jpg", "big.png"}
        assert "old.jpg" not in names("red after:2020")
        assert names("red modified-before:2024-02 modified-after:2024-01") == {"old.jpg", "new.jpg"}
        assert names("red width>=400") == {"big.png"}
        assert names(f"red size>{big.stat().st_size - 1}") >= {"big.png"}
        assert names("red size<10b") == set()
        assert names("red ext:jpg -folder:trips") == {"blue.jpg"}
        assert names("red ext:jpg", folders=[media / "trips"]) == {"old.jpg", "new.jpg"}
        assert names("bread -kind:image") <= {"bread.md", "garden.txt"}
        # A filter in the text and one from the program must both hold.
        assert names("red kind:text", kinds=["image"]) == set()


def test_examples_and_cutoff_in_the_text(tmp_path: Path, media: Path) -> None:
    with Library.open(tmp_path / "ix", model="hash-test", settings=Settings()) as lib:
        lib.index([media])
        hits = lib.search(f'image:"{media / "red.png"}" kind:image', k=1)
        assert Path(hits[0].path).name == "red.png"
        assert all(h.score >= 0.99 for h in lib.search(f'image:"{media / "red.png"}" min:0.99'))
        with pytest.raises(QueryError, match="does not exist"):
            lib.search("image:nowhere/missing.jpg")


def test_a_cutoff_that_hides_everything_says_so(tmp_path: Path, media: Path) -> None:
    index = tmp_path / "ix"
    with Library.open(index, model="hash-test", settings=Settings()) as lib:
        lib.index([media])
        hidden = lib.search("purple sky min:0.99")
        assert hidden == [] and hidden.below_cutoff > 0 and hidden.best_below is not None
    run = subprocess.run(
        [sys.executable, "-m", "mmsearch", "search", "purple sky", "--min-score", "0.99", "--index", str(index)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 1 and run.stdout == ""
    assert "No results above the cut-off 0.99:" in run.stderr
    assert f"best score {hidden.best_below:.3f}" in run.stderr and "--min-score" in run.stderr
    shown = subprocess.run(
        [sys.executable, "-m", "mmsearch", "search", "red kind:image", "--index", str(index), "--plain"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert shown.returncode == 0 and "red.png" in shown.stdout.splitlines()[0]
    typo = subprocess.run(
        [sys.executable, "-m", "mmsearch", "search", "red knd:image", "--index", str(index)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert typo.returncode == 1
    assert typo.stderr.splitlines()[-1].startswith("Did you mean kind:?")


@pytest.mark.parametrize(
    ("query", "expression"),
    [
        ("a red car", '"red" AND "car"'),
        ('"red car" street', '"street" AND "red car"'),
        ("IMG_20*", '"img" AND "20"*'),
        ('beach -"sun set" -dog', '("beach") NOT ("sun set" OR "dog")'),
        ("the a of", None),
        ('NEAR(x) OR title:y', '"near" AND "x" AND "title" AND "y"'),
    ],
)
def test_keyword_expressions(query: str, expression: str | None) -> None:
    from mmsearch.query.keywords import fts_expression

    assert fts_expression(parse_query(query).terms) == expression


@pytest.mark.parametrize("fusion", ["score", "rrf"])
def test_names_phrases_and_prefixes_find_their_files(tmp_path: Path, fusion: str) -> None:
    media = tmp_path / "media"
    for i, name in enumerate(["IMG_2041.png", "IMG_2077.png", "DSC_0001.png", "red car park.png",
                              "car red.png"]):
        make_image(media / name, COLOURS["blue"], stripe=5 * i)
    settings = Settings(keyword_fusion=fusion)
    with Library.open(tmp_path / "ix", model="hash-test", settings=settings) as lib:
        lib.index([media])

        def top(query: str, k: int = 1) -> set[str]:
            return {Path(h.path).name for h in lib.search(query, k=k)}

        assert top("IMG_2041") == {"IMG_2041.png"}
        assert top("IMG_20*", k=2) == {"IMG_2041.png", "IMG_2077.png"}
        assert top('"red car"') == {"red car park.png"}
        # The negative keeps the phrase's file out of the keyword matches (vectors may still
        # return it, unraised).
        hits = {Path(h.path).name: h for h in lib.search('"red car" -park', k=10, min_score=-1)}
        assert "keyword" not in hits["red car park.png"].scores


def test_control_characters_in_the_text_are_not_taken_for_damage(tmp_path: Path, media: Path) -> None:
    # A NUL once reached the FTS5 query, whose error read as a damaged catalog.
    with Library.open(tmp_path / "ix", model="hash-test", settings=Settings()) as lib:
        lib.index([media])
        hits = lib.search("bread\x00flour", k=3)
        assert hits and Path(hits[0].path).name == "bread.md"
