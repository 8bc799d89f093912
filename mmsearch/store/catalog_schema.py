"""The catalog's schema: how a new catalog is created and how each older version is migrated."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mmsearch.media.text import unspaced_grams

if TYPE_CHECKING:
    import sqlite_utils

SCHEMA_VERSION = 8


def _create_v1(db: sqlite_utils.Database) -> None:
    db["items"].create(
        {
            "id": int,
            "path": str,
            "root": str,
            "folder": str,
            "name": str,
            "ext": str,
            "kind": str,
            "size": int,
            "mtime_ns": int,
            "hash": str,
            "width": int,
            "height": int,
            "duration": float,
            "taken_at": str,
            "status": str,
            "error": str,
            "indexed_at": float,
        },
        pk="id",
        not_null=["path", "kind", "status"],
    )
    db["items"].create_index(["path"], unique=True)
    db["items"].create_index(["hash"])
    db["items"].create_index(["folder"])
    # AUTOINCREMENT so a vector id is never reused: FAISS indexes key on it.
    db.execute(
        """CREATE TABLE vectors (
               id INTEGER PRIMARY KEY AUTOINCREMENT,
               item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
               space TEXT NOT NULL,
               chunk INTEGER NOT NULL DEFAULT 0,
               vector BLOB NOT NULL)"""
    )
    db["vectors"].create_index(["item_id"])
    db["vectors"].create_index(["space", "id"])
    db["texts"].create({"item_id": int, "words": str, "content": str}, pk="item_id")
    db["texts"].enable_fts(["words", "content"], create_triggers=True, tokenize="porter")
    db["roots"].create({"path": str, "added_at": float}, pk="path")
    db["meta"].create({"key": str, "value": str}, pk="key")


def _v1_to_v2(db: sqlite_utils.Database) -> None:
    """Roots can be offline (a drive unmounted), exclusions stick, and roots are normalised
    (older versions stored `/a/b/../c` as typed, which made every run re-add its files)."""
    db.execute("ALTER TABLE roots ADD COLUMN missing_since REAL")
    db["excludes"].create({"pattern": str, "added_at": float}, pk="pattern")
    for (root,) in db.execute("SELECT path FROM roots").fetchall():
        clean = os.path.normpath(root)
        if clean != root:
            db.execute("DELETE FROM roots WHERE path = ?", [root])
            db.execute(
                "INSERT OR IGNORE INTO roots(path, added_at) VALUES (?, ?)", [clean, time.time()]
            )


def _v2_to_v3(db: sqlite_utils.Database) -> None:
    """Audio: clip facts on items, time ranges on vectors, sound tags and transcripts (both
    searchable by keyword)."""
    for column, kind in (("sample_rate", "INTEGER"), ("channels", "INTEGER"), ("codec", "TEXT")):
        db.execute(f"ALTER TABLE items ADD COLUMN {column} {kind}")
    db.execute("ALTER TABLE vectors ADD COLUMN t_start REAL")
    db.execute("ALTER TABLE vectors ADD COLUMN t_end REAL")
    # What made a vector when that changes its score scale (e.g. "audio-bridge"); NULL otherwise.
    db.execute("ALTER TABLE vectors ADD COLUMN source TEXT")
    db.execute(
        "CREATE TABLE tags (item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE, "
        "label TEXT NOT NULL, score REAL NOT NULL)"
    )
    db.execute("CREATE INDEX tags_item ON tags(item_id)")
    db.execute(
        "CREATE TABLE transcripts (item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE "
        "CASCADE, t_start REAL NOT NULL, t_end REAL NOT NULL, text TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX transcripts_item ON transcripts(item_id)")
    db["texts"].disable_fts()
    db.execute("ALTER TABLE texts ADD COLUMN tags TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE texts ADD COLUMN speech TEXT NOT NULL DEFAULT ''")
    db["texts"].enable_fts(
        ["words", "content", "tags", "speech"], create_triggers=True, tokenize="porter", replace=True
    )


def _v3_to_v4(db: sqlite_utils.Database) -> None:
    """Text read in images (OCR): lines with their boxes, and their words searchable by keyword."""
    db.execute(
        "CREATE TABLE read_words (item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE "
        "CASCADE, text TEXT NOT NULL, x0 REAL, y0 REAL, x1 REAL, y1 REAL, confidence REAL)"
    )
    db.execute("CREATE INDEX read_words_item ON read_words(item_id)")
    # Text read in images often runs words together ("multimodalsearch"): a trigram index of it
    # finds a word inside such a run. Kept by write_item; a trigger drops removed items.
    db.execute("CREATE VIRTUAL TABLE seen_trigrams USING fts5(seen, tokenize='trigram')")
    db.execute(
        "CREATE TRIGGER seen_trigrams_forget AFTER DELETE ON items BEGIN "
        "DELETE FROM seen_trigrams WHERE rowid = old.id; END"
    )
    db["texts"].disable_fts()
    db.execute("ALTER TABLE texts ADD COLUMN seen TEXT NOT NULL DEFAULT ''")
    db["texts"].enable_fts(
        ["words", "content", "tags", "speech", "seen"],
        create_triggers=True,
        tokenize="porter",
        replace=True,
    )


def _v4_to_v5(db: sqlite_utils.Database) -> None:
    """What each region of an image shows (`encoders/regions.py`), for the reranker. Items
    indexed before have none: the reranker leaves them where the first stage put them."""
    db.execute(
        "CREATE TABLE regions (item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE "
        "CASCADE, format TEXT NOT NULL, count INTEGER NOT NULL, width INTEGER NOT NULL, "
        "data BLOB NOT NULL)"
    )


def _v5_to_v6(db: sqlite_utils.Database) -> None:
    """Videos: frame rate and display rotation (size, length, date and codecs use the columns
    images and recordings have)."""
    db.execute("ALTER TABLE items ADD COLUMN frame_rate REAL")
    db.execute("ALTER TABLE items ADD COLUMN rotation INTEGER")
    # Per keyframe, what its regions show (as `regions` for an image), for the reranker.
    db.execute(
        "CREATE TABLE frame_regions (item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE "
        "CASCADE, frame INTEGER NOT NULL, format TEXT NOT NULL, count INTEGER NOT NULL, "
        "width INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (item_id, frame))"
    )


def _v6_to_v7(db: sqlite_utils.Database) -> None:
    """Keywords in scripts written without spaces (Chinese, Japanese, Thai): their characters
    and character pairs (`media.text.unspaced_grams`) in a full-text table of their own, kept by
    write_item; a trigger drops removed items. Filled here from the text already held."""
    # IF NOT EXISTS and a refill: a catalog rolled back to an older version by hand keeps them.
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS text_grams USING fts5(grams, tokenize='unicode61')")
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS text_grams_forget AFTER DELETE ON items BEGIN "
        "DELETE FROM text_grams WHERE rowid = old.id; END"
    )
    db.execute("DELETE FROM text_grams")
    fill_text_grams(db)


def fill_text_grams(db: sqlite_utils.Database) -> None:
    rows = db.execute("SELECT item_id, words, content, tags, speech, seen FROM texts")
    db.conn.executemany(
        "INSERT INTO text_grams(rowid, grams) VALUES (?, ?)",
        ((row[0], grams) for row in rows if (grams := unspaced_grams(" ".join(row[1:])))),
    )


def _v7_to_v8(db: sqlite_utils.Database) -> None:
    """Films committed in parts: how far into its file an item's windows reach while a run
    that was interrupted (kill -9, power loss) has more of it to do. NULL: the whole file is
    indexed (every item before this version). The item stays searchable for what it holds."""
    # Checked first: a catalog rolled back to an older version by hand keeps the column.
    if "indexed_until" not in db["items"].columns_dict:
        db.execute("ALTER TABLE items ADD COLUMN indexed_until REAL")


# MIGRATIONS[n] brings a catalog from schema version n to n + 1.
MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {
    0: _create_v1,
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
    5: _v5_to_v6,
    6: _v6_to_v7,
    7: _v7_to_v8,
}

