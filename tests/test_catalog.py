"""The SQLite catalog: schema versions, refusal of newer formats, items with their vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmsearch.errors import IndexFormatError
from mmsearch.store.catalog import Catalog
from mmsearch.store.catalog_items import ItemFacts
from mmsearch.store.catalog_schema import SCHEMA_VERSION


def facts(path: str) -> ItemFacts:
    return ItemFacts(path, "/r", "image", 10, 1, "h", words="red car")


def test_new_catalog_is_at_the_current_schema_and_uses_wal(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    assert catalog.schema_version() == SCHEMA_VERSION
    assert catalog.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_catalog_from_a_newer_mmsearch_is_refused(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    catalog.set_meta("schema_version", str(SCHEMA_VERSION + 1))
    catalog.close()
    with pytest.raises(IndexFormatError, match="newer mmsearch"):
        Catalog(tmp_path / "c.db")


def test_item_and_vectors_are_written_and_replaced_together(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    item, old, new = catalog.write_item(facts("/r/a.jpg"), {"visual": np.ones((1, 4), np.float32)})
    assert old == []
    again, old2, new2 = catalog.write_item(facts("/r/a.jpg"), {"visual": np.zeros((1, 4), np.float32)})
    assert again == item and old2 == new["visual"]
    assert catalog.vector_count("visual") == 1
    assert new2["visual"][0] > new["visual"][0]  # vector ids are never reused


def test_keyword_search_finds_file_name_words(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    item, _, _ = catalog.write_item(facts("/r/a.jpg"), {})
    assert catalog.keyword_search("car", 5) == [item]
    assert catalog.keyword_search("red car", 5) == [item]
    assert catalog.keyword_search("red boat", 5) == []  # every word must match
    assert catalog.keyword_search("boat", 5) == []


def test_a_read_only_catalog_reads_without_sqlite_utils_and_sees_later_commits(tmp_path: Path) -> None:
    """Searches open the catalog read-only on plain sqlite3 (no sqlite_utils import): rows come
    back as they did, and a refused write (the doctor's full-text check) does not leave a
    transaction open that would hide what another process commits afterwards."""
    writer = Catalog(tmp_path / "c.db")
    item, _, _ = writer.write_item(facts("/r/a.jpg"), {"visual": np.ones((1, 4), np.float32)})
    reader = Catalog(tmp_path / "c.db", readonly=True)
    assert type(reader.db).__name__ == "ReadDatabase"
    assert reader.items_by_id([item])[item]["path"] == "/r/a.jpg"
    assert reader.integrity_problems() == []
    assert reader.vector_count("visual") == 1
    writer.write_item(facts("/r/b.jpg"), {"visual": np.ones((1, 4), np.float32)})
    assert reader.vector_count("visual") == 2
